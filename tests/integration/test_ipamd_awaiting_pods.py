"""The warm pool grows for the pods bound to a node that wait for an IP,
against the real kube-apiserver and the cloud emulator.

A pod bound to a node (``spec.nodeName``), still Pending, requesting
``tke.cloud.tencent.com/eni-ip`` (the webhook's mark of a pod that takes an
ENI IP) and holding no IP yet waits in CNI ADD for a free IP of that node.
ipamd sizes the node's dynamic pool as ``used + awaiting + warm target``
(``ipamd.rules.pool``), capped by what the instance can hold: with a warm
target of 0 such a pod still gets its IP (it waited until its bound and
failed before), and a burst of pods gets its IPs in one refill instead of one
warm pool at a time. A pod deleted before it got its IP leaves an ordinary
surplus IP, trimmed as usual. A static-IP pod gets its claimed IP from the
claim controller and adds nothing to the warm pool."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import names
from harness.ipamd_world import POD_SUBNET3, pod_manifest
from ipamd.app import App
from ipamd.controllers.necctl import nec_path
from ipamd.rules.warm import ANN_MAX_WARM, ANN_MIN_WARM
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle

NO_WARM = ("--min-prebind", "0", "--max-prebind", "0")
FIVE_WARM = ("--min-prebind", "5", "--max-prebind", "5")
LIMIT = 27  # S5.LARGE8: 4 ENIs x 10 IPs -> (4 - 1) x (10 - 1) secondary IPs


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    yield k
    k.wipe()


def eni_pod(
    kube: Kube, name: str, node: str = "n1", *, eni_ip: bool = True, host_network: bool = False
) -> dict[str, Any]:
    """A dynamic-IP pod bound to ``node`` (no kubelet: it stays Pending) that
    requests ``eni-ip: 1`` as the webhook makes it."""
    body = pod_manifest(name, node, policy=None)
    if eni_ip:
        one = {names.RESOURCE_ENI_IP: "1"}
        body["spec"]["containers"][0]["resources"] = {"requests": one, "limits": dict(one)}
    if host_network:
        body["spec"]["hostNetwork"] = True
    obj: dict[str, Any] = kube.api.create("/api/v1/namespaces/default/pods", body)
    return obj


def dynamic(kube: Kube, node: str = "n1") -> list[str]:
    """The node's dynamic VpcIPs (no claim), any state."""
    return sorted(o["metadata"]["name"] for o in kube.vpcips(node) if not o["spec"].get("claim"))


def on_node(emu: EmulatorHandle, kube: Kube, node: str = "n1") -> set[str]:
    enis = {e["metadata"]["name"] for e in kube.vpcenis(node)}
    return {ip for ip, eni in cloud_ips(emu).items() if eni in enis}


def status_is(kube: Kube, node: str, lo: int, hi: int, source: str) -> bool:
    st = (kube.api.get_or_none(nec_path(node)) or {}).get("status") or {}
    return (st.get("minWarmTarget"), st.get("maxWarmTarget"), st.get("source")) == (lo, hi, source)


def ipamd_sees(app: App, pods: int, used: int, node: str = "n1") -> bool:
    """ipamd's caches show ``pods`` pods waiting on ``node`` and ``used`` of its
    IPs in use (so a pass decides on what the test set up)."""
    st = app.state
    in_use = sum(1 for ip in st.node_ips(node) if ip.used)
    return len(st.awaiting_pods(node)) == pods and in_use == used


def one_pass(app: App, node: str = "n1") -> None:
    """One node pass now, in the test's thread (deterministic, no timing)."""
    app.nodes.sync(node)


def test_zero_warm_target_pod_waiting_gets_an_ip(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_is(kube, "n1", 0, 0, "global"))
        one_pass(app)
        assert dynamic(kube) == [], "min-prebind 0 and no pod: no warm IP"
        pod = eni_pod(kube, "web-a")
        # the bug: the pool was sized from the warm targets only, so this waited forever
        (ip,) = wait_for("one IP on n1 for the waiting pod", lambda: dynamic(kube) or None, 30)
        assert ip in on_node(emu, kube), "assigned in the cloud on n1's ENI"
        # CNI ADD takes it; the pod holds it now and waits no more: nothing more is added
        assert agent.take_free("n1", pod) == ip
        wait_for("ipamd sees the IP in use", lambda: ipamd_sees(app, 1, 1))
        one_pass(app)
        assert dynamic(kube) == [ip], "the pod's IP is in use and counted once"
        assert len(on_node(emu, kube)) == 1


def test_pod_deleted_before_its_ip_leaves_ordinary_surplus(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_is(kube, "n1", 0, 0, "global"))
        eni_pod(kube, "web-a")
        wait_for("one IP for the waiting pod", lambda: len(dynamic(kube)) == 1, 30)
        kube.delete_pod("web-a")
        # no pod waits: the IP is surplus over a warm target of 0, asked back and
        # released after the trim interval (1 s in tests), as any surplus
        wait_for("the surplus IP released", lambda: dynamic(kube) == [], 60)
        wait_for("and unassigned in the cloud", lambda: on_node(emu, kube) == set(), 30)
        assert ipamd_sees(app, 0, 0)


def test_burst_gets_pods_plus_warm_target(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *FIVE_WARM) as app:
        wait_for("5 warm IPs on n1", lambda: len(dynamic(kube)) == 5, 30)
        pods = [eni_pod(kube, f"burst-{i}") for i in range(8)]
        # 8 waiting pods + a warm target of 5, in one refill (5 warm IPs did
        # not cover the burst: 3 pods would wait for the pool to refill after
        # the first 5 took theirs)
        wait_for("13 dynamic IPs on n1", lambda: len(dynamic(kube)) == 13, 30)
        wait_for("13 IPs on n1 in the cloud", lambda: len(on_node(emu, kube)) == 13, 30)
        for p in pods:
            assert agent.take_free("n1", p) is not None
        wait_for("ipamd sees 8 IPs in use", lambda: ipamd_sees(app, 8, 8))
        one_pass(app)
        assert len(dynamic(kube)) == 13, "8 in use + 5 warm: the pods are not counted twice"


def test_waiting_pods_capped_by_the_instance_limit(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *FIVE_WARM) as app:
        wait_for("5 warm IPs on n1", lambda: len(dynamic(kube)) == 5, 30)
        for i in range(25):
            eni_pod(kube, f"many-{i}")
        # 25 + 5 wanted, the instance holds 27 secondary IPs
        wait_for(f"{LIMIT} dynamic IPs on n1", lambda: len(dynamic(kube)) == LIMIT, 60)
        wait_for("ipamd sees 25 pods waiting", lambda: ipamd_sees(app, 25, 0))
        one_pass(app)
        assert len(dynamic(kube)) == LIMIT
        assert len(on_node(emu, kube)) == LIMIT


def test_nec_zero_target_and_pods_that_take_no_eni_ip(kube: Kube, emu: EmulatorHandle) -> None:
    """The per-node annotations of 0 behave as the flag; a pod that asks for no
    eni-ip, or runs in the host network, waits for no ENI IP and adds nothing."""
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *FIVE_WARM) as app:
        wait_for("nec n1 5/5", lambda: status_is(kube, "n1", 5, 5, "global"))
        zero = {ANN_MIN_WARM: "0", ANN_MAX_WARM: "0"}
        kube.api.patch(nec_path("n1"), {"metadata": {"annotations": zero}})
        wait_for("nec n1 0/0", lambda: status_is(kube, "n1", 0, 0, "annotation"))
        wait_for("no warm IP on n1", lambda: dynamic(kube) == [], 60)
        eni_pod(kube, "plain", eni_ip=False)
        eni_pod(kube, "host", host_network=True)
        eni_pod(kube, "web-a")
        # one watch, in order: once ipamd has the last pod, it has judged the others
        wait_for("ipamd sees one pod waiting", lambda: ipamd_sees(app, 1, 0))
        wait_for("one IP for the waiting pod", lambda: len(dynamic(kube)) == 1, 30)
        one_pass(app)
        assert len(dynamic(kube)) == 1, "only web-a waits for an ENI IP"


def test_static_pod_adds_nothing_to_the_warm_pool(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_is(kube, "n1", 0, 0, "global"))
        body = pod_manifest("db-0", "n1")  # vpc-ip-claim-delete-policy Never, a StatefulSet's
        one = {names.RESOURCE_ENI_IP: "1"}
        body["spec"]["containers"][0]["resources"] = {"requests": one, "limits": dict(one)}
        kube.api.create("/api/v1/namespaces/default/pods", body)
        wait_for(
            "the claim's IP on n1",
            lambda: [o for o in kube.vpcips("n1") if o["spec"].get("claim") == "default/db-0"],
            30,
        )
        wait_for("ipamd sees the claimed IP", lambda: len(app.state.node_ips("n1")) == 1)
        one_pass(app)
        assert dynamic(kube) == [], "its claim gives the pod its IP: no dynamic IP for it"
