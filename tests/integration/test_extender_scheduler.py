"""The extender as a process (``python -m scheduler_extender.cli``) watching a
real kube-apiserver, called by the real kube-scheduler for kwok nodes in two
zones, with our CRDs (deploy/crds/) and the ipamd ConfigMaps. kube-scheduler
talks to it as deploy/ configures it: HTTPS with its client certificate
(localcluster.extender_pki), the extender requiring that certificate.

The extender process and the set-up the benchmark shares (bench/extender.py)
live in the test bed: harness.extender and harness.kubeobjects.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, PLURAL_VPC_IP_CLAIM
from harness.extender import (
    ZONE_A,
    ZONE_B,
    ExtenderProcess,
    pod_manifest,
    shipped_scheduler_config,
    zone_nodes,
)
from harness.kubeobjects import apply_crds, put_configmap
from localcluster import objects as ex
from localcluster.controlplane import ControlPlane
from localcluster.extender_pki import make_extender_pki
from localcluster.fakenodes import FakeNode
from localcluster.ports import free_ports
from tests.fixtures_controlplane import ControlPlaneFactory


def create_with_status(
    api: client.ApiClient, plural: str, obj: dict[str, Any], namespace: str = ""
) -> None:
    """Create a custom object, then write its status (a status subresource)."""
    custom = client.CustomObjectsApi(api)
    status = obj.get("status")
    if namespace:
        created = custom.create_namespaced_custom_object(
            CRD_GROUP, CRD_VERSION, namespace, plural, obj
        )
    else:
        created = custom.create_cluster_custom_object(CRD_GROUP, CRD_VERSION, plural, obj)
    if status:
        created["status"] = status
        name = created["metadata"]["name"]
        if namespace:
            custom.replace_namespaced_custom_object_status(
                CRD_GROUP, CRD_VERSION, namespace, plural, name, created
            )
        else:
            custom.replace_cluster_custom_object_status(
                CRD_GROUP, CRD_VERSION, plural, name, created
            )


def wait_bound(
    core: client.CoreV1Api, names: Sequence[str], timeout: float = 120.0
) -> dict[str, str]:
    """name → node, once every pod is bound."""
    deadline = time.monotonic() + timeout
    bound: dict[str, str] = {}
    while time.monotonic() < deadline:
        for pod in core.list_namespaced_pod("default").items:
            if pod.metadata.name in names and pod.spec.node_name:
                bound[pod.metadata.name] = pod.spec.node_name
        if len(bound) == len(names):
            return bound
        time.sleep(0.2)
    raise AssertionError(f"not bound after {timeout}s: {sorted(set(names) - set(bound))}")


def failed_scheduling(core: client.CoreV1Api, pod: str, needle: str, timeout: float = 60.0) -> str:
    """The message of the pod's FailedScheduling event that contains ``needle``."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        events = core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={pod},reason=FailedScheduling"
        ).items
        seen = [e.message or "" for e in events]
        for message in seen:
            if needle in message:
                return message
        time.sleep(0.3)
    raise AssertionError(f"no FailedScheduling event for {pod} with {needle!r}; saw {seen}")


class Cluster:
    """A control plane with kube-scheduler wired to our extender process."""

    def __init__(
        self,
        factory: ControlPlaneFactory,
        nodes: list[FakeNode],
        tmp: Path,
        *extender_args: str,
        node_cache: bool = True,
    ) -> None:
        (port,) = free_ports(1)
        pki = make_extender_pki(tmp / "extender-pki")
        config = shipped_scheduler_config(f"https://127.0.0.1:{port}", pki)
        config["extenders"][0]["nodeCacheCapable"] = node_cache
        self.cp: ControlPlane = factory(
            with_scheduler=True, scheduler_config=config, kwok_nodes=nodes
        )
        self.api = self.cp.api_client()
        self.core = client.CoreV1Api(self.api)
        apply_crds(self.api)
        self.extender = ExtenderProcess(
            self.cp.kubeconfig, port, tmp / "extender.log", *extender_args, pki=pki
        )

    def close(self) -> None:
        self.extender.stop()
        self.api.close()


@pytest.fixture
def cluster(control_plane_factory: ControlPlaneFactory, tmp_path: Path) -> Iterator[Cluster]:
    nodes = zone_nodes(ZONE_A, "a", 2, eni_ip=2) + zone_nodes(ZONE_B, "b", 2, eni_ip=2)
    c = Cluster(control_plane_factory, nodes, tmp_path)
    try:
        yield c
    except BaseException:
        print(c.extender.logs())
        raise
    finally:
        c.close()


def configure(c: Cluster, *subnets: str) -> None:
    put_configmap(c.core, ex.ipamd_configmap(*subnets))
    put_configmap(
        c.core,
        ex.status_configmap(ex.subnet("subnet-a", ZONE_A), ex.subnet("subnet-b", ZONE_B)),
    )


# --- tests ------------------------------------------------------------------
def test_eni_pods_land_only_in_the_subnet_zone(cluster: Cluster) -> None:
    configure(cluster, "subnet-a")
    cluster.extender.wait_ready()
    names = [f"web-{i}" for i in range(4)]
    for name in names:
        cluster.core.create_namespaced_pod("default", pod_manifest(name))
    bound = wait_bound(cluster.core, names)
    assert set(bound.values()) <= {"a-0", "a-1"}, bound
    assert cluster.extender.metric(
        "tke_eni_extender_filter_decisions_total", reason="zone-no-subnet", result="unresolvable"
    ) >= 2 * len(names)

    # a fifth pod: zone A is full (2 × 2 eni-ip), zone B has no subnet
    cluster.core.create_namespaced_pod("default", pod_manifest("web-4"))
    message = failed_scheduling(cluster.core, "web-4", "0/4 nodes are available")
    assert "Insufficient tke.cloud.tencent.com/eni-ip" in message

    # pods without eni-ip never reach the extender (managedResources); the
    # extender logs one line per filter call, naming the pod
    cluster.core.create_namespaced_pod("default", pod_manifest("plain", eni_ip=False))
    wait_bound(cluster.core, ["plain"])
    cluster.core.create_namespaced_pod("default", pod_manifest("web-5"))  # a marker after it
    failed_scheduling(cluster.core, "web-5", "0/4 nodes are available")
    logs = cluster.extender.logs(5000)
    assert 'pod="default/web-5"' in logs
    assert 'pod="default/plain"' not in logs

    # the operator adds a subnet of zone B to the ConfigMap: no restart. The
    # scheduler retries the pending pods on an event its own plugins care about
    # (a ConfigMap is none; else within podMaxInUnschedulablePodsDuration, 5 min):
    # deleting web-0 frees one eni-ip in zone A, so one of them may go there,
    # the other can only land in zone B
    configure(cluster, "subnet-a", "subnet-b")
    time.sleep(1.0)  # the extender's ConfigMap watch delivers first
    cluster.core.delete_namespaced_pod("web-0", "default", grace_period_seconds=0)
    bound = wait_bound(cluster.core, ["web-4", "web-5"])
    assert {"b-0", "b-1"} & set(bound.values()), bound


def test_static_pod_stays_in_its_ip_zone_and_says_why(cluster: Cluster) -> None:
    configure(cluster, "subnet-a", "subnet-b")
    claim = ex.claim(
        "default", "db-0", "10.0.4.9", zone=ZONE_B, subnet="subnet-b", phase="Reserved"
    )
    create_with_status(cluster.api, PLURAL_VPC_IP_CLAIM, claim, namespace="default")
    cluster.extender.wait_ready()
    cluster.core.create_namespaced_pod("default", pod_manifest("db-0", static=True))
    assert wait_bound(cluster.core, ["db-0"])["db-0"] in ("b-0", "b-1")
    cluster.core.delete_namespaced_pod("db-0", "default", grace_period_seconds=0)

    # zone B fills up: every eni-ip slot of b-0 and b-1 is in use
    for node in ("b-0", "b-1"):
        for i in range(2):
            ip = ex.vpc_ip(
                f"10.0.4.{10 + i}{node[-1]}", node, subnet="subnet-b", zone=ZONE_B, phase="InUse"
            )
            create_with_status(cluster.api, PLURAL_VPC_IP, ip)
    claim1 = ex.claim("default", "db-1", "10.0.4.20", zone=ZONE_B, subnet="subnet-b")
    create_with_status(cluster.api, PLURAL_VPC_IP_CLAIM, claim1, namespace="default")
    time.sleep(1.0)  # let the watch deliver (the assertion below waits anyway)
    cluster.core.create_namespaced_pod("default", pod_manifest("db-1", static=True))
    message = failed_scheduling(cluster.core, "db-1", "tke-eni-ip-scheduler")
    print(f"FailedScheduling: {message}")
    assert (
        "2 node(s) rejected by tke-eni-ip-scheduler: static IP 10.0.4.20 "
        "(VpcIPClaim default/db-1) is in zone ap-guangzhou-4; node is in zone ap-guangzhou-3"
    ) in message, message
    assert "2 node(s) rejected by tke-eni-ip-scheduler: no ENI IP headroom" in message, message
    pod = cluster.core.read_namespaced_pod("db-1", "default")
    assert not pod.spec.node_name


def test_full_nodes_mode_with_the_real_scheduler(
    control_plane_factory: ControlPlaneFactory, tmp_path: Path
) -> None:
    """nodeCacheCapable: false — the scheduler sends whole Node objects and
    builds its node infos from the ones we echo back: they must be exact."""
    nodes = zone_nodes(ZONE_A, "a", 2) + zone_nodes(ZONE_B, "b", 2)
    c = Cluster(control_plane_factory, nodes, tmp_path, node_cache=False)
    try:
        configure(c, "subnet-b")
        c.extender.wait_ready()
        names = [f"full-{i}" for i in range(3)]
        for name in names:
            c.core.create_namespaced_pod("default", pod_manifest(name))
        bound = wait_bound(c.core, names)
        assert set(bound.values()) <= {"b-0", "b-1"}, bound
        assert 'mode="Nodes"' in c.extender.logs(2000)
    finally:
        c.close()


def test_apiserver_gone_extender_answers_from_stale_cache(
    control_plane_factory: ControlPlaneFactory, tmp_path: Path
) -> None:
    """kube-apiserver killed: the extender keeps answering from its caches,
    says so in metrics and /readyz (still ready), and logs the failing watches."""
    nodes = zone_nodes(ZONE_A, "a", 1) + zone_nodes(ZONE_B, "b", 1)
    c = Cluster(control_plane_factory, nodes, tmp_path, "--stale-after", "1")
    try:
        configure(c, "subnet-a")
        c.extender.wait_ready()
        deadline = time.monotonic() + 30
        while c.extender.metric("tke_eni_extender_cache_objects", kind="nodes") < 2:
            assert time.monotonic() < deadline, c.extender.logs()
            time.sleep(0.2)
        c.cp.processes["kube-apiserver"].stop()
        deadline = time.monotonic() + 60
        while c.extender.metric("tke_eni_extender_cache_stale", kind="nodes") != 1.0:
            assert time.monotonic() < deadline, c.extender.logs()
            time.sleep(0.2)
        body = c.extender.post("/filter", ex.filter_args(ex.pod(), ["a-0", "b-0"]))
        assert body["NodeNames"] == ["a-0"]
        assert "zone ap-guangzhou-4 has no subnet" in body["FailedAndUnresolvableNodes"]["b-0"]
        code, text = c.extender.get("/readyz")
        assert code == 200 and "stale" in text
        assert (
            c.extender.metric("tke_eni_extender_stale_answers_total", kind="nodes", verb="filter")
            == 1.0
        )
        assert "list/watch failed, cache kept, retrying" in c.extender.logs(2000)
    finally:
        c.close()


def test_scheduler_without_the_client_certificate_is_refused(
    control_plane_factory: ControlPlaneFactory, tmp_path: Path
) -> None:
    """A kube-scheduler that trusts the extender but presents no client certificate
    (tlsConfig with caFile only) gets no answer: the pod stays pending with the TLS
    error in its FailedScheduling event, and the extender counts the refusals."""
    nodes = zone_nodes(ZONE_A, "a", 1)
    (port,) = free_ports(1)
    pki = make_extender_pki(tmp_path / "extender-pki")
    config = shipped_scheduler_config(f"https://127.0.0.1:{port}", pki)
    config["extenders"][0]["tlsConfig"] = {"caFile": str(pki.server_ca)}
    cp = control_plane_factory(with_scheduler=True, scheduler_config=config, kwok_nodes=nodes)
    api = cp.api_client()
    core = client.CoreV1Api(api)
    apply_crds(api)
    extender = ExtenderProcess(cp.kubeconfig, port, tmp_path / "extender.log", pki=pki)
    try:
        put_configmap(core, ex.ipamd_configmap("subnet-a"))
        put_configmap(core, ex.status_configmap(ex.subnet("subnet-a", ZONE_A)))
        extender.wait_ready()
        core.create_namespaced_pod("default", pod_manifest("no-cert"))
        message = failed_scheduling(core, "no-cert", "/filter")
        print(f"FailedScheduling: {message}")
        # TLS 1.3: the client's handshake is done before the server checks its
        # certificate, so Go sees the server's alert or, when it was already writing
        # the request, the closed connection. Either way no request got through (the
        # counters below say so).
        prefix = f'Post "https://127.0.0.1:{port}/filter": '
        assert message.startswith(prefix), message
        assert any(
            why in message
            for why in ("remote error: tls: certificate required", "broken pipe",
                        "connection reset by peer")
        ), message
        assert not core.read_namespaced_pod("no-cert", "default").spec.node_name
        assert extender.metric("tke_eni_extender_tls_refused_connections_total") >= 1
        assert extender.metric("tke_eni_extender_requests_total", code="200", verb="filter") == 0
    finally:
        extender.stop()
        api.close()


def test_sigterm_stops_the_extender_with_its_watches_open(
    control_plane_factory: ControlPlaneFactory, tmp_path: Path
) -> None:
    """SIGTERM while every watch stream is open (CRDs installed, caches synced): the
    process exits 0 within a bound (the watch threads are blocked in reads)."""
    cp = control_plane_factory(kwok_nodes=zone_nodes(ZONE_A, "a", 1))
    api = cp.api_client()
    core = client.CoreV1Api(api)
    apply_crds(api)
    (port,) = free_ports(1)
    extender = ExtenderProcess(cp.kubeconfig, port, tmp_path / "extender.log",
                               pki=make_extender_pki(tmp_path / "extender-pki"))
    try:
        configure_core(core)
        extender.wait_ready()
        time.sleep(1.0)  # the watches are in their streams
        extender.proc.terminate()
        try:
            code = extender.proc.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running 15 s after SIGTERM:\n{extender.logs()}") from None
        assert code == 0, extender.logs()
    finally:
        extender.stop()
        api.close()


def configure_core(core: client.CoreV1Api) -> None:
    put_configmap(core, ex.ipamd_configmap("subnet-a"))
    put_configmap(core, ex.status_configmap(ex.subnet("subnet-a", ZONE_A)))
