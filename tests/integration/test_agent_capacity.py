"""The node agent feeds the device plugin: the whole agent (Kubernetes IP
source, in a node netns, against the real kube-apiserver through a TCP proxy)
writes the capacity file; a real ``tke-eni-device-plugin`` process reads it
and advertises to the kubelet stand-in over real gRPC. Healthy devices follow
what the node can use now (``core.usable``): 0 without an ENI, the
limits-derived maximum less the slots of leaving IPs while its zone has free
IPs, its warm IPs once the zone's subnets are exhausted or the status is gone.

No timed assertions: every wait is a generous bound for the expected value."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from core.capacityfile import parse_capacity_file
from core.models import (
    SUBNET_STATUS_KEY,
    SubnetStatus,
    dump_subnet_statuses,
)
from core.names import (
    CONFIGMAP_NAMESPACE,
    CRD_GROUP,
    CRD_VERSION,
    PLURAL_VPC_ENI,
    PLURAL_VPC_IP,
    RESOURCE_ENI_IP,
)
from core.usable import IpTally
from harness.kubelet import KubeletStandin
from localcluster.controlplane import ControlPlane
from tests.deploy_support import DEPLOY, create_crds, load_docs, yaml_files
from tests.fixtures_netns import AgentFactory, NetnsTcpProxy, Vpc
from tests.ipamd_records import create_vpc_eni, create_vpc_ip, mark_eni_attached

R = RESOURCE_ENI_IP
S5_LARGE8 = 27  # (4 − 1) × (10 − 1)
ZONE = "ap-guangzhou-3"
WAIT = 60.0  # a bound that only ends a hung test


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api_client:
        create_crds(api_client, [d for p in yaml_files(DEPLOY / "crds") for d in load_docs(p)])
        yield api_client


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dpc-", dir="/tmp")  # short: unix socket paths ≤ 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    k = KubeletStandin(plugin_dir).start()
    yield k
    k.stop()


@contextlib.contextmanager
def device_plugin(plugin_dir: str, capacity_file: Path, log: Path) -> Iterator[None]:
    exe = Path(sys.executable).with_name("tke-eni-device-plugin")
    assert exe.exists(), f"{exe} missing: run hack/setup.sh (step: pip install -e '.[test]')"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "--device-plugin-dir",
                plugin_dir,
                "--instance-id",
                "ins-capfeed",
                "--instance-type",
                "S5.LARGE8",
                "--zone",
                ZONE,
                "--limits-source",
                "table",
                "--capacity-file",
                str(capacity_file),
                "--metrics-bind-address",
                "",
                "--log-format",
                "text",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_agent_feeds_the_device_plugin(
    api: client.ApiClient,
    control_plane: ControlPlane,
    vpc: Vpc,
    agents: AgentFactory,
    plugin_dir: str,
    kubelet: KubeletStandin,
    tmp_path: Path,
) -> None:
    crd = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:8]
    node_name, eni_id = f"cap-{tag}", f"eni-{tag}"
    status_name = f"ipamd-status-{tag}"  # this test's own: other tests' ipamd publish the default
    net = f"10.{150 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    ips = [f"{net}.{i}" for i in (10, 11, 12, 13, 14)]
    node = vpc.add_node(1, [[f"{net}.2", *ips]])
    capfile = tmp_path / "dp" / "eni-ip-capacity"
    proxy = NetnsTcpProxy.to_apiserver(node.ns, control_plane.server)

    def set_status(available: int) -> None:
        body = {
            "metadata": {"name": status_name},
            "data": {
                SUBNET_STATUS_KEY: dump_subnet_statuses(
                    [
                        SubnetStatus(
                            subnet_id="subnet-capfeed",
                            zone=ZONE,
                            cidr=f"{net}.0/24",
                            available=available,
                            total=253,
                        ),
                        # free IPs in another zone do not help this node
                        SubnetStatus(subnet_id="subnet-other", zone="ap-guangzhou-4", available=99),
                    ]
                )
            },
        }
        try:
            core.replace_namespaced_config_map(status_name, CONFIGMAP_NAMESPACE, body)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespaced_config_map(CONFIGMAP_NAMESPACE, body)

    agent = agents(node, start=False, eni_only=False)

    def healthy(want: int, what: str) -> None:
        ok = kubelet.wait_capacity(R, S5_LARGE8, want, timeout=WAIT)
        ep = kubelet.endpoint(R)
        got = sum(1 for h in ep.devices.values() if h == "Healthy") if ep else None
        content = capfile.read_text() if capfile.exists() else "<no file>"
        assert ok, (
            f"{what}: want {want} healthy of {S5_LARGE8}, kubelet has {got}; "
            f"capacity file:\n{content}\nagent:\n{agent.logs()[-3000:]}"
        )

    try:
        kubeconfig = proxy.kubeconfig(control_plane.kubeconfig, agent.workdir / "kubeconfig")
        agent.start(
            "--ip-source",
            "kubernetes",
            "--pod-source",
            "kubernetes",
            "--kubeconfig",
            str(kubeconfig),
            "--node-name",
            node_name,
            "--device-plugin-capacity-file",
            str(capfile),
            "--subnet-status-configmap",
            f"{CONFIGMAP_NAMESPACE}/{status_name}",
        )
        with device_plugin(plugin_dir, capfile, tmp_path / "device-plugin.log"):
            # 1. ipamd gave the node nothing yet: no ENI -> nothing usable
            healthy(0, "no VpcENI")

            # 2. ipamd attaches an ENI with IPs, and its zone has free IPs -> no limit
            create_vpc_eni(crd, eni_id, node_name, "subnet-capfeed", ZONE)
            mark_eni_attached(
                crd,
                eni_id,
                mac=node.enis[0].mac,
                primary_ip=f"{net}.2",
                subnet_cidr=f"{net}.0/24",
                gateway="10.10.0.1",
            )
            for ip in ips:
                create_vpc_ip(crd, ip, node_name, eni_id, "subnet-capfeed", ZONE)
            set_status(available=120)
            healthy(S5_LARGE8, "ENI attached, zone has free IPs")

            # 3. the zone's subnet is exhausted -> only the IPs the node holds
            set_status(available=0)
            healthy(len(ips), "zone exhausted")

            # 4. ipamd takes one back (Releasing): no longer held
            crd.patch_cluster_custom_object(
                CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ips[-1], {"spec": {"state": "Releasing"}}
            )
            healthy(len(ips) - 1, "one IP Releasing")

            # 5. free IPs again -> the maximum, less the slot the leaving IP still takes
            set_status(available=3)
            healthy(S5_LARGE8 - 1, "zone has free IPs again")

            # 6. no status at all (ipamd gone): the node cannot count on a refill,
            # only its warm IPs are usable
            set_status(available=0)
            healthy(len(ips) - 1, "exhausted again")
            core.delete_namespaced_config_map(status_name, CONFIGMAP_NAMESPACE)
            healthy(len(ips) - 1, "status ConfigMap deleted")
    finally:
        agent.kill()
        proxy.close()
        for ip in ips:
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni_id)
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_config_map(status_name, CONFIGMAP_NAMESPACE)


def test_file_ip_source_has_no_status(vpc: Vpc, agents: AgentFactory, tmp_path: Path) -> None:
    """With the file IP source there is no subnet status: the node cannot count
    on a refill, its warm IPs are what it can use; no ENI means 0. The default
    (no flag) writes nothing."""
    node = vpc.add_node(2, [["10.31.0.2", "10.31.0.10", "10.31.0.11"]])
    capfile = tmp_path / "cap" / "eni-ip-capacity"
    agent = agents(node, "--device-plugin-capacity-file", str(capfile))

    def wait_usable(want: IpTally, what: str) -> None:
        deadline = time.monotonic() + WAIT  # a bound that only ends a hung test
        while True:
            text = capfile.read_text() if capfile.exists() else None
            if text is not None and parse_capacity_file(text).tally == want:
                return
            assert time.monotonic() < deadline, f"{what}: file is {text!r}\n{agent.logs()[-3000:]}"
            time.sleep(0.1)

    wait_usable(IpTally(warm=2), "ENI, no status")
    assert "no-subnet-status" in capfile.read_text()
    agent.write_ips({"enis": [], "ips": []})
    wait_usable(IpTally(), "no ENI")

    plain = agents(vpc.add_node(3, [["10.32.0.2", "10.32.0.10"]]))
    assert plain.proc is not None and plain.proc.poll() is None
    assert not any(p.name == "eni-ip-capacity" for p in plain.workdir.rglob("*"))
