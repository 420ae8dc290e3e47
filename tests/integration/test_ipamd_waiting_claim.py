"""A static IP waiting for room gets it once room appears, with no other
trigger (issue 11, found by the mutation triage; docs/ipamd.md), against the
real kube-apiserver and the emulator: the pod subnet is filled in the cloud,
a StatefulSet pod's claim waits (``WaitingForSubnet``), addresses are freed
in the cloud, and the claim gets its IP on the pod's node — nothing touches
the pod, its claim or ipamd meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.ipamd_world import POD_SUBNET3
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, ipamd_inprocess, wait_for
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


def _waiting(kube: Kube, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.events("default", "WaitingForSubnet")
        if (e.get("involvedObject") or {}).get("name") == name
    ]


def test_a_static_ip_waiting_for_a_full_subnet_gets_it_once_room_appears(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane
) -> None:
    world = emu.emulator.world
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, control_plane.kubeconfig):
        wait_for("warm pool on n1", lambda: len(kube.vpcips("n1")) >= 1, 60)
        with world.lock:  # the subnet fills up (other users of the VPC)
            taken = world.allocate(POD_SUBNET3, world.available_count(POD_SUBNET3))
        pod = kube.add_pod("web-1", "n1")
        uid = pod["metadata"]["uid"]
        wait_for("web-1 waits for a subnet", lambda: _waiting(kube, "web-1"), 60)
        assert not ((kube.claim("web-1") or {}).get("status") or {}).get("ip")
        with world.lock:  # the other users let go of their addresses
            world.used[POD_SUBNET3] -= set(taken)
        rec = wait_for(
            "web-1's static IP once the subnet has room",
            lambda: agent.static_ready("default/web-1", uid, "n1"),
            60,
        )
        assert rec.subnet == POD_SUBNET3
