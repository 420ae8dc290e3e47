"""``kubectl delete vipc`` of a running StatefulSet pod, then an ipamd restart,
against the real kube-apiserver and the emulator: the pod keeps its address
as a dynamic IP, and the restarted ipamd (which remembers nothing) makes no
new claim for it — the durable mark on the VpcIP (``spec.unclaimedPodUid``,
core.models) says so. A new pod of the StatefulSet (a new UID) gets a claim
as usual."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import models as m
from harness.ipamd_world import POD_SUBNET3
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from tests.integration.test_ipamd_static_ips import start_static, stop_pod
from vpcsim.testing import EmulatorHandle


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    yield k
    k.wipe()


def vpcip(kube: Kube, ip: str) -> dict | None:  # type: ignore[type-arg]
    return next((o for o in kube.vpcips() if o["metadata"]["name"] == ip), None)


def test_unclaimed_running_pod_gets_no_new_claim_after_an_ipamd_restart(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent:
        with ipamd_inprocess(emu, kube.kubeconfig):
            pod, ip = start_static(kube, agent, "web-0", "n1")
            uid = pod["metadata"]["uid"]
            kube.api.delete(paths.claim("default", "web-0"))  # `kubectl delete vipc web-0`
            wait_for("claim gone", lambda: kube.claim("web-0") is None, timeout=60)
            wait_for(
                "the address kept as a dynamic IP",
                lambda: (o := vpcip(kube, ip)) is not None and not o["spec"].get("claim"),
            )
        # ipamd restarts (or a new leader takes over): nothing in memory
        with ipamd_inprocess(emu, kube.kubeconfig):
            # a new StatefulSet pod's claim bound proves the restarted ipamd went
            # through its start-up queue (web-0's key was in it)
            start_static(kube, agent, "web-1", "n1")
            assert kube.claim("web-0") is None, (
                f"a new claim was made for the running pod web-0 ({uid}), which keeps "
                f"{ip} as a dynamic IP: {kube.claim('web-0')}"
            )
            claimed = sorted(o["metadata"]["name"] for o in kube.vpcips() if o["spec"].get("claim"))
            assert len(claimed) == 1, f"VpcIPs held for claims: {claimed}"
            assert ip in cloud_ips(emu)
            kept = vpcip(kube, ip)
            assert kept is not None and (kept.get("status") or {}).get("podUid") == uid
            assert kept["spec"].get("unclaimedPodUid") == uid, kept["spec"]  # the durable mark
            # the pod goes and comes back (a new UID): a claim as usual
            stop_pod(kube, agent, "web-0", ip)
            new_pod, _ = start_static(kube, agent, "web-0", "n1")
            c = kube.claim("web-0")
            assert c is not None and c["status"]["podUid"] == new_pod["metadata"]["uid"]
            assert c["status"]["phase"] == m.CLAIM_PHASE_BOUND


def test_unclaimed_running_pod_whose_record_is_deleted_too_gets_no_new_claim(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """``kubectl delete vipc`` and ``kubectl delete vip`` of the running pod's
    address while ipamd is down: the restarted ipamd finds the claim's address
    without a record; it records it as the pod's dynamic IP (with the mark)
    instead of forgetting the pod keeps it."""
    with AgentStandIn(kube) as agent:
        with ipamd_inprocess(emu, kube.kubeconfig):
            pod, ip = start_static(kube, agent, "web-0", "n1")
            uid = pod["metadata"]["uid"]
        first = (kube.claim("web-0") or {})["metadata"]["uid"]
        kube.api.delete(paths.claim("default", "web-0"))  # held by its finalizer
        kube.api.delete(paths.vpc_ip(ip))
        with ipamd_inprocess(emu, kube.kubeconfig):
            wait_for(
                "the deleted claim gone",
                lambda: (kube.claim("web-0") or {}).get("metadata", {}).get("uid") != first,
                timeout=60,
            )
            start_static(kube, agent, "web-1", "n1")  # the queue went round
            assert kube.claim("web-0") is None, (
                f"a new claim was made for the running pod web-0 ({uid}), which keeps "
                f"{ip} as a dynamic IP: {kube.claim('web-0')}"
            )
            assert ip in cloud_ips(emu)
            kept = wait_for("a record of the kept address", lambda: vpcip(kube, ip))
            assert not kept["spec"].get("claim"), kept["spec"]
            assert kept["spec"].get("unclaimedPodUid") == uid, kept["spec"]
