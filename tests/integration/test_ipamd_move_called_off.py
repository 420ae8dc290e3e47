"""A static pod deleted while its IP was asked back for a move, against the
real kube-apiserver and the emulator (``ClaimController.mark_reserved``): the
move is off. The claim goes Reserved where its address really is (the old
node, not the move's destination), and the release request is taken back
(``spec.state`` Assigned, ``spec.releaseId`` cleared), so that a grant the old
node's agent gives later can never be read as an answer. Left open, a
granted request is never finished: the claimed record stays Releasing, with
the old agent's "Released" ready to be taken for the answer to a later
move."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import models as m
from harness.ipamd_world import POD_SUBNET3
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import (
    GRANT,
    HOLD,
    AgentStandIn,
    Kube,
    cloud_ips,
    ipamd_inprocess,
    wait_for,
)
from tests.integration.test_ipamd_grants import move, start_static, vip
from vpcsim.testing import EmulatorHandle


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    k.add_node("n3", "ins-sim00003")  # same zone
    yield k
    k.wipe()


def test_pod_deleted_while_its_ip_is_asked_back_for_a_move_calls_the_move_off(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        ip, _ = start_static(kube, agent, "web-0", "n1")
        n1_enis = {o["metadata"]["name"] for o in kube.vpcenis("n1")}
        agent.set_policy(HOLD, node="n1")  # n1's agent does not answer yet
        agent.free(ip)  # CNI DEL of the old pod
        move(kube, "web-0", "n3")
        wait_for(f"{ip} asked back from n1 for the move", lambda: ip in agent.asked("n1"))
        claim = kube.claim("web-0")
        assert claim is not None and claim["status"]["phase"] == m.CLAIM_PHASE_MIGRATING
        # the pod goes before the old agent answers
        kube.delete_pod("web-0")
        reserved = wait_for(
            "claim Reserved",
            lambda: (
                c
                if (c := kube.claim("web-0"))
                and (c.get("status") or {}).get("phase") == m.CLAIM_PHASE_RESERVED
                else None
            ),
        )
        rec = vip(kube, ip)
        assert rec is not None, f"the VpcIP of {ip} is gone"
        spec = rec["spec"]
        assert spec.get("state") == m.IP_STATE_ASSIGNED and not spec.get("releaseId"), (
            f"the move's release request on {ip} is still open after the pod went: {spec}"
        )
        assert reserved["status"].get("nodeName") == "n1", (
            f"claim Reserved on {reserved['status'].get('nodeName')!r}, its IP {ip} is on n1"
        )
        assert spec.get("nodeName") == "n1" and cloud_ips(emu).get(ip) in n1_enis
        assert agent.asked("n1") == [], agent.asked("n1")  # nothing left to answer
        # the pod comes back on the old node: its address, no move, no handshake
        agent.set_policy(GRANT, node="n1")
        back = kube.add_pod("web-0", "n1")
        rec2 = wait_for(
            "web-0's IP ready on n1",
            lambda: agent.static_ready("default/web-0", back["metadata"]["uid"], "n1"),
        )
        assert rec2.ip == ip
        assert cloud_ips(emu).get(ip) in n1_enis
