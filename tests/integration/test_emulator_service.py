"""Metadata service, admin endpoints, role credentials, the tke-vpcsim console
script, persistence across a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.adapter import TencentCloud
from cloud.settings import CloudSettings
from core.ids import InstanceId, SubnetId, VpcId
from tests.emulator_client import cloud_for
from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("instance-id", "ins-sim00002"),
        ("instance/instance-type", "SA2.MEDIUM4"),
        ("placement/region", "ap-guangzhou"),
        ("placement/zone", "ap-guangzhou-4"),
        ("local-ipv4", "10.0.4.2"),
        ("cam/security-credentials/", "tke-eni-node-role"),
    ],
)
def test_metadata_paths(emu: EmulatorHandle, path: str, want: str) -> None:
    assert _get(emu.metadata_url("ins-sim00002") + path) == (200, want)


def test_metadata_primary_interface(emu: EmulatorHandle) -> None:
    base = emu.metadata_url("ins-sim00001")
    _, mac = _get(base + "mac")
    assert mac == mac.lower() and len(mac) == 17
    assert _get(base + "network/interfaces/macs/") == (200, f"{mac}/")
    assert _get(base + f"network/interfaces/macs/{mac}/primary-local-ipv4") == (200, "10.0.3.2")
    assert _get(base + f"network/interfaces/macs/{mac}/vpc-id") == (200, "vpc-sim00001")
    assert _get(base + f"network/interfaces/macs/{mac.upper()}/subnet-id") == (
        200, "subnet-sim00003")
    assert _get(base + f"network/interfaces/macs/{mac}/local-ipv4s/") == (200, "10.0.3.2/")
    assert _get(base + f"network/interfaces/macs/{mac}/local-ipv4s/10.0.3.2/gateway") == (
        200, "10.0.3.1")


@pytest.mark.parametrize(
    "path",
    ["/meta/ins-sim00001/latest/meta-data/nope", "/meta/ins-zzzzzzzz/latest/meta-data/instance-id",
     "/meta/ins-sim00001/latest/meta-data/network/interfaces/macs/00:00:00:00:00:00/vpc-id",
     "/meta/ins-sim00001/latest/meta-data/cam/security-credentials/other-role",
     "/meta/ins-sim00001/other", "/nothing"],
)
def test_metadata_404(emu: EmulatorHandle, path: str) -> None:
    assert _get(emu.url + path)[0] == 404


def test_role_credentials_work_against_the_api(emu: EmulatorHandle) -> None:
    settings = CloudSettings(
        region=emu.region, vpc_endpoint=emu.endpoint, cvm_endpoint=emu.endpoint, protocol="http",
        metadata_url=emu.metadata_url("ins-sim00001"), credentials_file="/nonexistent",
        task_poll_s=0.02,
    )
    saved = {k: os.environ.pop(k) for k in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY")
             if k in os.environ}
    try:
        cloud = TencentCloud.from_settings(settings)
        assert cloud.eni_limits(InstanceId("ins-sim00001")).enis == 4
        eni = cloud.create_eni(vpc_id=VpcId("vpc-sim00001"),
                               subnet_id=SubnetId("subnet-sim00033"), name="role")
        assert eni.eni_id.startswith("eni-")
    finally:
        os.environ.update(saved)


def test_admin_endpoints(emu: EmulatorHandle) -> None:
    faults = emu.admin("POST", "/_admin/faults", {"latency_ms": 5, "throttle_ratio": 0.1})
    assert faults["latency_ms"] == 5.0 and faults["throttle_ratio"] == 0.1
    assert emu.admin("GET", "/_admin/faults")["latency_ms"] == 5.0
    inst = emu.admin("POST", "/_admin/instances",
                     {"subnet_id": "subnet-sim00004", "instance_type": "SA2.2XLARGE16",
                      "name": "node-9"})
    iid = inst["instance_id"]
    assert iid.startswith("ins-")
    assert _get(emu.metadata_url(iid) + "placement/zone") == (200, "ap-guangzhou-4")
    sub = emu.admin("POST", "/_admin/subnets",
                    {"vpc_id": "vpc-sim00001", "cidr": "10.0.100.0/24", "zone": "ap-guangzhou-4"})
    assert sub["subnet_id"].startswith("subnet-")
    state = emu.admin("GET", "/_admin/state")
    assert iid in {i["instance_id"] for i in state["instances"]}
    assert sub["subnet_id"] in {s["subnet_id"] for s in state["subnets"]}
    assert emu.admin("DELETE", f"/_admin/instances/{iid}") == {"deleted": iid}
    assert iid not in emu.instance_ids


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_admin/faults", b"{bad", 400),
        ("POST", "/_admin/faults", b'{"nope": 1}', 400),
        ("POST", "/_admin/faults", b'{"throttle_ratio": 2}', 400),
        ("POST", "/_admin/faults", b'{"latency_ms": "slow"}', 400),
        ("POST", "/_admin/faults", b"[]", 400),
        ("POST", "/_admin/instances", b"{}", 400),
        ("POST", "/_admin/instances", b'{"subnet_id": "subnet-zzzzzzzz"}', 400),
        ("POST", "/_admin/instances", b'{"subnet_id": "subnet-sim00003", "instance_type": "x"}',
         400),
        ("POST", "/_admin/subnets", b'{"vpc_id": "vpc-sim00001", "cidr": "10.0.3.0/24", '
         b'"zone": "z"}', 400),
        ("POST", "/_admin/nothing", b"{}", 404),
        ("GET", "/_admin/nothing", None, 404),
        ("DELETE", "/_admin/instances/ins-zzzzzzzz", None, 404),
    ],
)
def test_admin_bad_input(emu: EmulatorHandle, method: str, path: str, body: bytes | None,
                         status: int) -> None:
    req = urllib.request.Request(emu.url + path, data=body, method=method)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == status
    assert "error" in json.loads(err.value.read())


def _start(args: list[str], tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("tke-vpcsim", path=str(Path(sys.executable).parent))
    assert exe, "tke-vpcsim missing: run hack/setup.sh (step: pip install -e .)"
    port_file = tmp / "port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([exe, "--port", "0", "--port-file", str(port_file), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    _, err = proc.communicate()
    raise AssertionError(f"tke-vpcsim did not start: {err.decode()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_console_script_persistence_and_dump(tmp_path: Path) -> None:
    persist = tmp_path / "state.json"
    proc, url = _start(["--persist", str(persist)], tmp_path)
    try:
        endpoint = url.removeprefix("http://")
        cloud = TencentCloud.from_settings(CloudSettings(
            vpc_endpoint=endpoint, cvm_endpoint=endpoint, protocol="http",
            secret_id="AKIDsimulator000000000000000000000",
            secret_key="simulator-secret-key-000000000000", task_poll_s=0.02))
        eni = cloud.create_eni(vpc_id=VpcId("vpc-sim00001"),
                               subnet_id=SubnetId("subnet-sim00033"), name="persisted")
        exe = str(Path(sys.executable).parent / "tke-vpcsim")
        out = subprocess.run([exe, "add-instance", "--url", url, "--subnet-id", "subnet-sim00003",
                              "--instance-type", "S5.2XLARGE16"], capture_output=True, check=True)
        added = json.loads(out.stdout)["instance_id"]
        out = subprocess.run([exe, "faults", "--url", url, '{"latency_ms": 1}'],
                             capture_output=True, check=True)
        assert json.loads(out.stdout)["latency_ms"] == 1.0
    finally:
        _stop(proc)
    assert proc.returncode == 0
    saved = json.loads(persist.read_text())
    assert eni.eni_id in {e["eni_id"] for e in saved["enis"]}
    proc, url = _start(["--persist", str(persist)], tmp_path)
    try:
        exe = str(Path(sys.executable).parent / "tke-vpcsim")
        out = subprocess.run([exe, "dump", "--url", url], capture_output=True, check=True)
        state = json.loads(out.stdout)
        assert eni.eni_id in {e["eni_id"] for e in state["enis"]}
        assert added in {i["instance_id"] for i in state["instances"]}
        assert {e["state"] for e in state["enis"]} == {"AVAILABLE"}
    finally:
        _stop(proc)


def test_console_script_state_file_and_bad_files(tmp_path: Path) -> None:
    spec = tmp_path / "state.yaml"
    spec.write_text(
        "region: ap-shanghai\n"
        "vpcs:\n"
        "  - id: vpc-test0001\n"
        "    cidr: 172.16.0.0/16\n"
        "    subnets:\n"
        "      - {id: subnet-test0001, name: a, cidr: 172.16.1.0/24, zone: ap-shanghai-2}\n"
        "    instances:\n"
        "      - {id: ins-test0001, type: S5.LARGE8, subnet: a}\n"
    )
    proc, url = _start(["--state", str(spec)], tmp_path)
    try:
        with urllib.request.urlopen(url + "/_admin/state", timeout=5) as r:
            state = json.loads(r.read())
        assert state["region"] == "ap-shanghai"
        assert [i["instance_id"] for i in state["instances"]] == ["ins-test0001"]
    finally:
        _stop(proc)
    bad = tmp_path / "bad.yaml"
    bad.write_text("vpcs:\n  - cidr: 10.0.0.0/16\n    instances: [{subnet: nope}]\n")
    exe = str(Path(sys.executable).parent / "tke-vpcsim")
    run = subprocess.run([exe, "serve", "--port", "0", "--state", str(bad)], capture_output=True,
                         timeout=30, check=False)
    assert run.returncode == 2
    assert b"unknown subnet" in run.stderr


def test_metadata_client(emu: EmulatorHandle) -> None:
    from cloud.metadata import MetadataClient, MetadataError

    md = MetadataClient(emu.metadata_url("ins-sim00001"))
    assert md.get("instance-id") == "ins-sim00001"
    assert md.get("placement/zone") == "ap-guangzhou-3"
    assert md.get("placement/region") == "ap-guangzhou"
    assert md.get("instance/instance-type") == "S5.LARGE8"
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id=VpcId("vpc-sim00001"), subnet_id=SubnetId("subnet-sim00033"),
                           name="mdc", secondary_ip_count=2)
    cloud.attach_eni(eni.eni_id, InstanceId("ins-sim00001"))
    macs = {line.strip().rstrip("/") for line in md.get("network/interfaces/macs/").splitlines()}
    assert macs == {md.get("mac").lower(), eni.mac}
    base = f"network/interfaces/macs/{eni.mac}/"
    assert md.get(base + "primary-local-ipv4") == eni.primary_ip
    assert md.get(base + "subnet-id") == "subnet-sim00033"
    ips = {line.strip().rstrip("/") for line in md.get(base + "local-ipv4s/").splitlines()}
    assert ips == {ip.address for ip in eni.ips}
    gateway = md.get(base + f"local-ipv4s/{eni.primary_ip}/gateway")
    netmask = md.get(base + f"local-ipv4s/{eni.primary_ip}/subnet-mask")
    assert (gateway, netmask) == ("10.0.32.1", "255.255.240.0")
    with pytest.raises(MetadataError, match="HTTP 404"):
        md.get("nope")
    with pytest.raises(MetadataError):
        MetadataClient("http://127.0.0.1:1/").get("instance-id")


@pytest.mark.parametrize("bad_id", ["node-1", "ins-SIM00001", "ins-abc", 7])
def test_admin_refuses_fake_looking_ids(emu: EmulatorHandle, bad_id: object) -> None:
    body = json.dumps({"subnet_id": "subnet-sim00003", "instance_id": bad_id}).encode()
    req = urllib.request.Request(emu.url + "/_admin/instances", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400


def test_spawned_emulator_survives_kill_with_persistence(tmp_path: Path) -> None:
    from vpcsim.testing import spawn_emulator

    persist = tmp_path / "vpcsim.json"
    with spawn_emulator(tmp_path / "a", persist=persist, faults={"task_delay_ms": 1}) as remote:
        cloud = cloud_for(remote)
        eni = cloud.create_eni(vpc_id=VpcId("vpc-sim00001"),
                               subnet_id=SubnetId("subnet-sim00033"), name="kept")
        iid = remote.add_instance("subnet-sim00004", "SA2.2XLARGE16")
        assert remote.set_faults(latency_ms=1)["latency_ms"] == 1.0
        assert len(remote.leaked_enis()) == 1
        remote.kill()  # every write was saved already
    with spawn_emulator(tmp_path / "b", persist=persist) as again:
        state = again.state()
        assert eni.eni_id in {e["eni_id"] for e in state["enis"]}
        assert iid in again.instance_ids
        assert cloud_for(again).eni_limits(InstanceId(iid)).max_pods == 95
        assert _get(again.metadata_url(iid) + "instance-id") == (200, iid)
