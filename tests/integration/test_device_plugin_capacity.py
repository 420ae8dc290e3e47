"""Capacity end to end: the node identity from the emulator's metadata
service, limits from DescribeNetworkInterfaceLimit through the real SDK
adapter over HTTP (credentials from the CVM role), the table fallback while
the API fails and the recovery after it, and dynamic capacity reaching the
kubelet stand-in's ListAndWatch."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.limits import limits_for_type
from core.names import RESOURCE_ENI_IP
from device_plugin.manager import DevicePluginManager
from device_plugin.settings import Settings
from harness.kubelet import KubeletStandin
from vpcsim.spec import DEFAULT_SPEC
from vpcsim.testing import EmulatorHandle, run_emulator

R = RESOURCE_ENI_IP

# instance → (type, quota override or None)
NODES = {
    "ins-dp000001": ("S5.LARGE8", None),
    "ins-dp000002": ("SA2.MEDIUM4", None),
    "ins-dp000003": ("SA2.2XLARGE16", None),
    "ins-dp000004": ("M5.4XLARGE64", None),
    "ins-dp000005": ("ZZ9.LARGE8", None),  # a family no table knows
    "ins-dp000006": ("S6.2XLARGE16", (6, 40)),  # the API knows better than the table
}


def spec() -> dict[str, object]:
    s = copy.deepcopy(DEFAULT_SPEC)
    instances = s["vpcs"][0]["instances"]  # type: ignore[index]
    for iid, (itype, quota) in NODES.items():
        node: dict[str, object] = {"id": iid, "type": itype, "subnet": "node-3"}
        if quota:
            node["enis"], node["ips_per_eni"] = quota
        instances.append(node)
    return s


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials only from the CVM role on the metadata service (as on a node)."""
    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TKE_CLOUD_CREDENTIALS_FILE", "/nonexistent/tencentcloud-credentials")
    monkeypatch.setenv("TKE_CLOUD_MAX_ATTEMPTS", "1")  # fail fast to the table


@pytest.fixture
def emu(cloud_env: None) -> Iterator[EmulatorHandle]:
    with run_emulator(state=spec()) as handle:
        yield handle


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dp-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    k = KubeletStandin(plugin_dir).start()
    yield k
    k.stop()


@pytest.fixture
def managers() -> Iterator[list[DevicePluginManager]]:
    made: list[DevicePluginManager] = []
    yield made
    for m in made:
        m.stop()


def start(made: list[DevicePluginManager], settings: Settings) -> DevicePluginManager:
    m = DevicePluginManager(settings)
    m.start()
    made.append(m)
    return m


def emu_settings(emu: EmulatorHandle, plugin_dir: str, iid: str, **kw: object) -> Settings:
    values: dict[str, object] = {
        "device_plugin_dir": plugin_dir,
        "metadata_url": emu.metadata_url(iid),
        "cloud_endpoint": f"http://{emu.endpoint}",
        "metrics_bind_address": "",
        "limits_retry_interval": 0.2,
        "limits_retry_max": 0.5,
    }
    values.update(kw)
    return Settings(**values)  # type: ignore[arg-type]


def metric(m: DevicePluginManager, name: str) -> float:
    return m.metrics.registry.get_sample_value(f"tke_eni_device_plugin_{name}") or 0.0


def test_capacity_per_instance_type_from_the_api(
    emu: EmulatorHandle, managers: list[DevicePluginManager]
) -> None:
    got: dict[str, int] = {}
    for iid, (itype, quota) in NODES.items():
        d = tempfile.mkdtemp(prefix="dp-", dir="/tmp")
        try:
            with KubeletStandin(d) as kubelet:
                m = start(managers, emu_settings(emu, d, iid))
                enis, ips = quota or (
                    limits_for_type(itype).enis,
                    limits_for_type(itype).ips_per_eni,
                )
                want = (enis - 1) * (ips - 1)
                assert kubelet.wait_capacity(R, want, want, timeout=30), (
                    itype,
                    kubelet.capacity(R),
                    kubelet.register_errors,
                )
                assert m.limits.identity is not None
                assert m.limits.identity.instance_type == itype  # from the metadata service
                assert m.limits.identity.zone == "ap-guangzhou-3"
                assert m.limits.limits is not None and m.limits.limits.source == "api"
                got[itype] = kubelet.capacity(R)
                m.stop()
        finally:
            shutil.rmtree(d, ignore_errors=True)
    print("\ncapacity per instance type (API via emulator): " + str(got))
    assert got["S5.LARGE8"] == 27
    assert got["SA2.MEDIUM4"] == 27
    assert got["SA2.2XLARGE16"] == 95
    assert got["S6.2XLARGE16"] == 5 * 39


def test_api_down_table_fallback_then_recovery(
    emu: EmulatorHandle,
    plugin_dir: str,
    kubelet: KubeletStandin,
    managers: list[DevicePluginManager],
) -> None:
    iid = "ins-dp000006"  # API: 6 ENIs × 40 IPs → 195; table (generic 8 vCPU): 95
    emu.set_faults(error_5xx_ratio=1.0, actions=["DescribeNetworkInterfaceLimit"])
    m = start(managers, emu_settings(emu, plugin_dir, iid))
    assert kubelet.wait_capacity(R, 95, 95, timeout=30), kubelet.capacity(R)
    assert m.limits.limits is not None and m.limits.limits.source == "generic"
    assert metric(m, "limits_table_fallback") == 1
    deadline = time.monotonic() + 10
    while metric(m, "limits_api_errors_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(m, "limits_api_errors_total") >= 2  # retried
    emu.clear_faults()
    assert kubelet.wait_capacity(R, 195, 195, timeout=30), kubelet.capacity(R)
    assert m.limits.limits is not None and m.limits.limits.source == "api"
    assert metric(m, "limits_table_fallback") == 0
    assert len(kubelet.registrations) == 1  # the change went through ListAndWatch


def test_api_unreachable_uses_table(
    emu: EmulatorHandle,
    plugin_dir: str,
    kubelet: KubeletStandin,
    managers: list[DevicePluginManager],
) -> None:
    # port 9 on loopback: connection refused
    m = start(
        managers,
        emu_settings(emu, plugin_dir, "ins-dp000003", cloud_endpoint="http://127.0.0.1:9"),
    )
    assert kubelet.wait_capacity(R, 95, 95, timeout=30)
    assert m.limits.limits is not None and m.limits.limits.source == "table"


def test_metadata_unreachable_then_overrides(
    plugin_dir: str, kubelet: KubeletStandin, managers: list[DevicePluginManager]
) -> None:
    # no metadata service: nothing advertised, the plugin keeps running
    m = start(
        managers,
        Settings(
            device_plugin_dir=plugin_dir,
            metadata_url="http://127.0.0.1:9/latest/meta-data/",
            metadata_timeout=0.5,
            metrics_bind_address="",
            limits_source="table",
        ),
    )
    assert kubelet.wait_capacity(R, 0, 0, timeout=30)  # registered, zero devices
    assert m._thread is not None and m._thread.is_alive()
    m.stop()
    # the flag/env overrides need no metadata at all
    start(
        managers,
        Settings(
            device_plugin_dir=plugin_dir,
            metadata_url="http://127.0.0.1:9/latest/meta-data/",
            instance_type="SA2.2XLARGE16",
            metrics_bind_address="",
            limits_source="table",
        ),
    )
    assert kubelet.wait_capacity(R, 95, 95, timeout=30)


def table_settings(plugin_dir: str, **kw: object) -> Settings:
    values: dict[str, object] = {
        "device_plugin_dir": plugin_dir,
        "instance_id": "ins-x",
        "instance_type": "S5.LARGE8",
        "limits_source": "table",
        "metrics_bind_address": "",
    }
    values.update(kw)
    return Settings(**values)  # type: ignore[arg-type]


def test_dynamic_capacity_reaches_list_and_watch(
    plugin_dir: str, kubelet: KubeletStandin, managers: list[DevicePluginManager]
) -> None:
    m = start(managers, table_settings(plugin_dir))
    assert kubelet.wait_capacity(R, 27, 27)
    ep = kubelet.endpoint(R)
    assert ep is not None
    feed = m.feed
    steps = [
        (lambda: feed.set_usable_ips(10), 27, 10),  # subnets exhausted: only 10 IPs now
        (lambda: feed.set_unavailable_enis(1), 27, 10),  # 2 ENIs × 9 = 18 ≥ 10
        (lambda: feed.set_unavailable_enis(2), 27, 9),  # one usable ENI: 9
        (lambda: feed.set_usable_ips(None), 27, 9),
        (lambda: feed.set_unavailable_enis(0), 27, 27),
        (lambda: feed.set_max_pods(5), 5, 5),  # operator cap: capacity shrinks
        (lambda: feed.set_max_pods(None), 27, 27),
    ]
    for change, capacity, healthy in steps:
        change()
        assert kubelet.wait_capacity(R, capacity, healthy), (capacity, healthy)
        devices = kubelet.devices(R)
        # each message is the full list: ids 0..capacity-1, the first `healthy` Healthy
        assert sorted(devices) == [f"eni-ip-{i:03d}" for i in range(capacity)]
        assert sorted(i for i, h in devices.items() if h == "Healthy") == [
            f"eni-ip-{i:03d}" for i in range(healthy)
        ]
    assert len(kubelet.registrations) == 1


def test_capacity_file_and_env(
    plugin_dir: str, kubelet: KubeletStandin, managers: list[DevicePluginManager]
) -> None:
    capfile = Path(plugin_dir).parent / (Path(plugin_dir).name + ".capacity")
    try:
        capfile.write_text("max_pods=20\n")
        start(
            managers,
            table_settings(plugin_dir, capacity_file=str(capfile), unavailable_enis=1, max_pods=25),
        )
        # file's cap 20 wins over --max-pods 25; --unavailable-enis 1 → 18 healthy
        assert kubelet.wait_capacity(R, 20, 18)
        tmp = capfile.with_suffix(".tmp")
        tmp.write_text("usable_ips = 3\nunavailable_enis = 0\n")
        os.replace(tmp, capfile)
        assert kubelet.wait_capacity(R, 25, 3)
        capfile.write_text("usable_ips = nonsense\n")  # bad file: kept as before
        time.sleep(1.2)
        assert kubelet.capacity(R) == 25 and kubelet.allocatable(R) == 3
        capfile.unlink()  # gone: back to flags
        assert kubelet.wait_capacity(R, 25, 18)
    finally:
        capfile.unlink(missing_ok=True)
