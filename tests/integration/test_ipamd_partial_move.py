"""A static-IP move that fails half-way must not leave a pod with an IP that is
somewhere else: found by the churn suite (IPAMD_FAULT_SEED=22,
IPAMD_FAULT_CYCLES=100, cycle 64). ipamd moves the address in the cloud
(old node -> new node), the next write (DELETE of the old VpcIP) fails, and the
pod is rescheduled back to the old node: the old record, still naming the old
node, is taken as the truth (``reserve_for_pod``) and the pod starts there with
an address the cloud routes to the other node.

Deterministic here: the apiserver fault proxy fails every DELETE of VpcIPs
while the pod bounces back."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ids import EniId
from harness.ipamd_world import CLUSTER, POD_SUBNET3
from ipamd.kube import paths
from localcluster.apifaults import rule
from localcluster.controlplane import ControlPlane
from localcluster.faultproxy import FaultProxy
from tests.emulator_client import cloud_for
from tests.integration.ipamd_churn import Ledger, Running, step_violations
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle

NODES = {"n1": "ins-sim00001", "n3": "ins-sim00003"}


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


def test_pod_back_on_the_old_node_after_a_half_done_move_keeps_a_working_ip(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane, tmp_path: Path
) -> None:
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as proxy:
        kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "ipamd.kubeconfig")
        with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kc):
            pod = kube.add_pod("web-0", "n3")
            rec = wait_for(
                "static IP on n3",
                lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
            )
            ip = rec.ip
            agent.use(ip, pod)
            agent.free(ip)  # the pod goes (CNI DEL), then comes back on n1
            kube.delete_pod("web-0")
            path = paths.pod("default", "web-0")
            wait_for("web-0 deleted", lambda: kube.api.get_or_none(path) is None)
            proxy.set_rules(rule("error", verbs="delete", resources="vpcips"))
            kube.add_pod("web-0", "n1")
            wait_for(
                "the address moved in the cloud, its record not (DELETE failing)",
                lambda: proxy.plan.stats().get("error-500", 0) >= 1,
                60,
            )
            # rescheduled back to n3 while the move is half done
            kube.delete_pod("web-0")
            wait_for("web-0 deleted again", lambda: kube.api.get_or_none(path) is None)
            back = kube.add_pod("web-0", "n3")
            uid = back["metadata"]["uid"]
            ready = None
            with contextlib.suppress(AssertionError):  # a careful ipamd waits: lift the fault
                ready = wait_for(
                    "web-0's IP ready on n3 with the fault on",
                    lambda: agent.static_ready("default/web-0", uid, "n3"),
                    20,
                )
            proxy.plan.clear()
            if ready is None:
                ready = wait_for(
                    "web-0's IP ready on n3",
                    lambda: agent.static_ready("default/web-0", uid, "n3"),
                    60,
                )
            agent.use(ready.ip, back)
            ledger = Ledger()
            ledger.add(ready.ip, Running("web-0", uid, "n3", "default/web-0"), "back on n3")
            broken = step_violations(kube, emu, ledger, NODES)
            assert not broken, "\n".join(broken)


def test_claimed_address_moved_in_without_its_record_is_not_deleted_with_the_eni(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """Found by the churn suite (IPAMD_FAULT_SEED=23, cycle 31): the move puts the
    address on a new ENI of the destination, the VpcIP create fails, the node's
    next sync sees an ENI with no record and deletes it, address included."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as proxy:
        kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "ipamd.kubeconfig")
        no_warm = ("--min-prebind", "0", "--max-prebind", "0")  # n1 has no ENI yet
        with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kc, *no_warm):
            pod = kube.add_pod("web-0", "n3")
            rec = wait_for(
                "static IP on n3",
                lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
            )
            ip = rec.ip
            agent.use(ip, pod)
            agent.free(ip)
            kube.delete_pod("web-0")
            path = paths.pod("default", "web-0")
            wait_for("web-0 deleted", lambda: kube.api.get_or_none(path) is None)
            proxy.set_rules(rule("error", verbs="create", resources="vpcips"))
            moved = kube.add_pod("web-0", "n1")
            uid = moved["metadata"]["uid"]
            wait_for(
                "the address moved in the cloud, its record not (create failing)",
                lambda: proxy.plan.stats().get("error-500", 0) >= 1,
                60,
            )
            with contextlib.suppress(AssertionError):  # bounded: the bug shows within seconds
                wait_for("the address gone from the cloud", lambda: ip not in cloud_ips(emu), 15)
            proxy.plan.clear()
            assert ip in cloud_ips(emu), f"claimed {ip} was deleted from the cloud with its ENI"
            ready = wait_for(
                "web-0's IP ready on n1",
                lambda: agent.static_ready("default/web-0", uid, "n1"),
                60,
            )
            agent.use(ready.ip, moved)
            ledger = Ledger()
            ledger.add(ready.ip, Running("web-0", uid, "n1", "default/web-0"), "moved to n1")
            broken = step_violations(kube, emu, ledger, NODES)
            assert not broken, "\n".join(broken)


def _half_done_move(
    kube: Kube, agent: AgentStandIn, proxy: FaultProxy, *, status_writes_fail: bool = False
) -> tuple[str, dict[str, object]]:
    """web-0 on n3, then rescheduled to n1 with every DELETE of VpcIPs failing:
    the address moves in the cloud, its record (still n3) does not follow.
    ``status_writes_fail``: ipamd's writes of VpcIP status fail too, so no
    re-point of the record can happen before the caller acts (the stand-in
    agents write directly, not through the proxy). Returns (ip, the pod on n1)."""
    pod = kube.add_pod("web-0", "n3")
    rec = wait_for(
        "static IP on n3",
        lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
    )
    agent.use(rec.ip, pod)
    agent.free(rec.ip)
    kube.delete_pod("web-0")
    path = paths.pod("default", "web-0")
    wait_for("web-0 deleted", lambda: kube.api.get_or_none(path) is None)
    rules = [rule("error", verbs="delete", resources="vpcips")]
    if status_writes_fail:
        rules.append(rule("error", verbs="patch", resources="vpcips/status"))
    proxy.set_rules(*rules)
    moved = kube.add_pod("web-0", "n1")
    wait_for(
        "the address moved in the cloud, its record not (DELETE failing)",
        lambda: proxy.plan.stats().get("error-500", 0) >= 1,
        60,
    )
    return rec.ip, moved


def test_ipamd_restarted_after_a_half_done_move_trusts_no_record_the_cloud_contradicts(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The move's in-memory state is lost (ipamd stops right after the failed
    DELETE); the pod comes back on n3 while no ipamd runs; the new ipamd, with
    the fault still on, must not give it the address the cloud routes to n1."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as proxy:
        kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "ipamd.kubeconfig")
        with AgentStandIn(kube) as agent:
            with ipamd_inprocess(emu, kc):
                ip, _ = _half_done_move(kube, agent, proxy, status_writes_fail=True)
            rec = kube.api.get_or_none(paths.vpc_ip(ip))
            assert rec is not None
            assert rec["spec"]["nodeName"] == "n3", "set-up: the record lags the cloud"
            assert cloud_ips(emu).get(ip) != rec["spec"]["eniId"], "set-up: the address moved"
            proxy.set_rules(rule("error", verbs="delete", resources="vpcips"))
            path = paths.pod("default", "web-0")
            kube.delete_pod("web-0")
            wait_for("web-0 deleted", lambda: kube.api.get_or_none(path) is None)
            back = kube.add_pod("web-0", "n3")
            uid = back["metadata"]["uid"]
            with ipamd_inprocess(emu, kc):
                ready = wait_for(
                    "web-0's IP ready on n3 (the DELETE fault still on)",
                    lambda: agent.static_ready("default/web-0", uid, "n3"),
                    60,
                )
                assert ready.ip == ip, "the claim kept its address"
                agent.use(ready.ip, back)
                ledger = Ledger()
                ledger.add(ready.ip, Running("web-0", uid, "n3", "default/web-0"), "back on n3")
                broken = step_violations(kube, emu, ledger, NODES)
                assert not broken, "\n".join(broken)
            proxy.plan.clear()


def test_a_claim_leaves_migrating_only_with_a_record_the_cloud_confirms(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The pod goes while its move is half done: the claim turns Reserved, and
    from then on its record is trusted as it is, so at that moment it must name
    the ENI that holds the address in the cloud."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as proxy:
        kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "ipamd.kubeconfig")
        # a long reconcile period: the claim controller must do it, not the reconcile loop
        slow = ("--reconcile-interval", "10m")
        with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kc, *slow):
            ip, _ = _half_done_move(kube, agent, proxy)
            kube.delete_pod("web-0")

            def reserved() -> dict[str, object] | None:
                c = kube.claim("web-0")
                st = (c or {}).get("status") or {}
                return c if st.get("phase") == "Reserved" else None

            wait_for("claim web-0 Reserved", reserved, 60)
            rec = kube.api.get_or_none(paths.vpc_ip(ip))
            assert rec is not None, f"no VpcIP for {ip}"
            where = cloud_ips(emu).get(ip)
            assert rec["spec"]["eniId"] == where, (
                f"claim Reserved with VpcIP {ip} naming {rec['spec']['eniId']} "
                f"(node {rec['spec']['nodeName']}) while the cloud has it on {where}"
            )
            proxy.plan.clear()


def test_pod_back_after_a_fallback_move_stopped_between_unassign_and_assign(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane
) -> None:
    """The move's fallback (unassign from the old ENI, assign on the new one)
    stopped half-way: the claim is Migrating, its record names n3's ENI, no ENI
    holds the address. The pod comes back to n3: its record must not be
    trusted as it is; the address goes back onto the ENI the record names."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    # a long reconcile period: the claim controller must do it, not the reconcile loop
    with (
        AgentStandIn(kube) as agent,
        ipamd_inprocess(emu, kube.kubeconfig, "--reconcile-interval", "10m"),
    ):
        pod = kube.add_pod("web-0", "n3")
        rec = wait_for(
            "static IP on n3",
            lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
        )
        ip = rec.ip
        agent.use(ip, pod)
        agent.free(ip)
        kube.delete_pod("web-0")
        path = paths.pod("default", "web-0")
        wait_for("web-0 deleted", lambda: kube.api.get_or_none(path) is None)
        agent.set_policy("hold", node="n3")  # the move waits for n3's answer
        kube.add_pod("web-0", "n1")
        wait_for("n3 asked to release it", lambda: ip in agent.asked("n3"), 60)
        claim = kube.claim("web-0") or {}
        assert (claim.get("status") or {}).get("phase") == "Migrating"
        # what a crash between the fallback's unassign and assign leaves in the cloud
        cloud_for(emu, cluster_id=CLUSTER).unassign_ips(EniId(rec.eni), [ip])
        assert ip not in cloud_ips(emu)
        kube.delete_pod("web-0")
        wait_for("web-0 deleted again", lambda: kube.api.get_or_none(path) is None)
        back = kube.add_pod("web-0", "n3")
        uid = back["metadata"]["uid"]
        ready = wait_for(
            "web-0's IP ready on n3",
            lambda: agent.static_ready("default/web-0", uid, "n3"),
            60,
        )
        assert ready.ip == ip, "the claim kept its address"
        agent.use(ready.ip, back)
        ledger = Ledger()
        ledger.add(ready.ip, Running("web-0", uid, "n3", "default/web-0"), "back on n3")
        broken = step_violations(kube, emu, ledger, NODES)
        assert not broken, "\n".join(broken)
