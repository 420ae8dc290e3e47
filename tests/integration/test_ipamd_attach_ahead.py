"""ipamd attaches the next ENI ahead when the attached ones are full, against
the real kube-apiserver and the cloud emulator.

The device plugin advertises "usable now" as ``min(room, warm + attachable)``
(``core.usable``), ``attachable`` being the unassigned room on the *attached*
secondary ENIs. With a warm target of 0 and those ENIs full (every slot
assigned and in use) both are 0: no pod is scheduled to the node, none waits
for an IP, and a pool sized from the warm targets and the waiting pods alone
never creates the next ENI — the node stayed capped at its attached ENIs
though its instance takes more. ipamd now attaches one ENI ahead (no
secondary IP) whenever the node can grow and its attached ENIs have no room
and no free IP left (``ipamd.rules.pool.needs_ahead_eni``), and never deletes
that empty ENI while the others stay full (``pool.kept_ahead``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core import models as m
from core import names
from harness.ipamd_world import POD_SUBNET3, pod_manifest
from ipamd.app import App
from ipamd.controllers.necctl import nec_path
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle

NO_WARM = ("--min-prebind", "0", "--max-prebind", "0")
PER_ENI = 9  # S5.LARGE8: 4 ENIs (the primary one included) x 10 IPs


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    yield k
    k.wipe()


def eni_pod(kube: Kube, name: str, node: str = "n1") -> dict[str, Any]:
    """A dynamic-IP pod bound to ``node`` (no kubelet: it stays Pending),
    requesting ``eni-ip: 1`` as the webhook makes it."""
    body = pod_manifest(name, node, policy=None)
    one = {names.RESOURCE_ENI_IP: "1"}
    body["spec"]["containers"][0]["resources"] = {"requests": one, "limits": dict(one)}
    obj: dict[str, Any] = kube.api.create("/api/v1/namespaces/default/pods", body)
    return obj


def attached(kube: Kube, node: str = "n1") -> dict[str, int]:
    """ENI id -> the IPs it holds (VpcIP records), for the node's Attached VpcENIs."""
    held: dict[str, int] = {}
    for e in kube.vpcenis(node):
        if (e.get("status") or {}).get("phase") == m.ENI_PHASE_ATTACHED:
            held[e["metadata"]["name"]] = 0
    for ip in kube.vpcips(node):
        if ip["spec"].get("eniId") in held:
            held[ip["spec"]["eniId"]] += 1
    return held


def attachable(kube: Kube, node: str = "n1") -> int:
    """The agent's ``attachable`` (cni.agent.capacity): capacity less the
    primary and every IP record, over the attached ENIs."""
    caps = {
        e["metadata"]["name"]: int(e["status"]["ipCapacity"])
        for e in kube.vpcenis(node)
        if (e.get("status") or {}).get("phase") == m.ENI_PHASE_ATTACHED
    }
    held = attached(kube, node)
    return sum(max(0, caps[k] - 1 - held.get(k, 0)) for k in caps)


def status_zero(kube: Kube, node: str = "n1") -> bool:
    st = (kube.api.get_or_none(nec_path(node)) or {}).get("status") or {}
    return (st.get("minWarmTarget"), st.get("maxWarmTarget")) == (0, 0)


def in_use(app: App, node: str = "n1") -> int:
    return sum(1 for ip in app.state.node_ips(node) if ip.used)


def take(agent: AgentStandIn, pod: dict[str, Any]) -> Callable[[], str | None]:
    return lambda: agent.take_free("n1", pod)


def fill(kube: Kube, agent: AgentStandIn, app: App, count: int, start: int = 0) -> list[str]:
    """``count`` pods bound to n1 get an IP each and hold it (CNI ADD)."""
    pods = [eni_pod(kube, f"p-{start + i}") for i in range(count)]
    taken: list[str] = []
    for p in pods:
        taken.append(wait_for(f"a free IP for {p['metadata']['name']}", take(agent, p), 60))
    wait_for(f"ipamd sees {start + count} IPs in use", lambda: in_use(app) == start + count, 30)
    return taken


def one_pass(app: App, node: str = "n1") -> None:
    """One node pass now, in the test's thread (deterministic, no timing)."""
    app.nodes.sync(node)


def test_full_enis_with_zero_warm_target_attach_the_next_eni_ahead(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_zero(kube))
        fill(kube, agent, app, PER_ENI)
        one_pass(app)
        # the first ENI holds 9 IPs, all in use: no room, no warm IP. The bug:
        # nothing more happened, and the device plugin advertised 0 for good
        wait_for("a second ENI attached to n1", lambda: len(attached(kube)) == 2, 30)
        enis = attached(kube)
        assert sorted(enis.values()) == [0, PER_ENI], "the ENI ahead holds no secondary IP"
        assert attachable(kube) == PER_ENI, "so the device plugin counts its room"
        ahead = next(k for k, v in enis.items() if v == 0)
        assert ahead in {e["eni_id"] if "eni_id" in e else e["id"] for e in emu.state()["enis"]}
        # passes again (and the trim interval, 1 s in tests) neither delete nor add one
        wait_for("ipamd sees the ENI ahead", lambda: len(app.state.node_enis("n1")) == 2, 30)
        for _ in range(3):
            one_pass(app)
        assert attached(kube) == enis, "the empty ENI ahead is kept while the others are full"
        # a pod lands (the device plugin let it): its wait gets an IP on the ENI ahead
        (ip,) = fill(kube, agent, app, 1, start=PER_ENI)
        assert cloud_ips(emu)[ip] == ahead
        one_pass(app)
        assert len(attached(kube)) == 2, "the ENI ahead has room: no third ENI"


def test_room_left_attaches_nothing_ahead(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_zero(kube))
        fill(kube, agent, app, PER_ENI - 1)
        for _ in range(3):
            one_pass(app)
        enis = attached(kube)
        assert list(enis.values()) == [PER_ENI - 1], "one ENI, room for one more IP"
        assert attachable(kube) == 1


def test_no_eni_ahead_beyond_the_instance_limit(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_zero(kube))
        fill(kube, agent, app, 3 * PER_ENI)
        for _ in range(3):
            one_pass(app)
        enis = attached(kube)
        assert sorted(enis.values()) == [PER_ENI] * 3, "3 secondary ENIs: the instance's limit"
        assert attachable(kube) == 0


def test_eni_ahead_released_once_the_others_have_room(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        wait_for("nec n1 0/0", lambda: status_zero(kube))
        taken = fill(kube, agent, app, PER_ENI)
        one_pass(app)
        wait_for("a second ENI attached to n1", lambda: len(attached(kube)) == 2, 30)
        # a pod leaves: its IP is surplus over a warm target of 0, released after
        # the trim interval; the first ENI has room again, and the empty ENI
        # ahead goes (after a trim interval with room left, so no flapping)
        kube.delete_pod("p-0")
        agent.free(taken[0])
        wait_for(
            "one ENI left, holding 8 IPs",
            lambda: list(attached(kube).values()) == [PER_ENI - 1],
            60,
        )
        assert attachable(kube) == 1
