"""ipamd waits for the node agent's grant before it takes an IP away: the agent
stand-in holds, refuses or delays its answers, or dies, and no IP is unassigned
(dynamic, drained subnet) or moved (static, pod moved to another node) until
its own grant is written. Each test has a positive signal that ipamd went
through the handshake again after the request (another IP granted and gone,
another claim moved), so a skipped grant check is caught without sleeping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import models as m
from harness.ipamd_world import POD_SUBNET3
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_churn import waits_for_old_pod
from tests.integration.ipamd_harness import (
    HOLD,
    REFUSE,
    AgentStandIn,
    Kube,
    cloud_ips,
    ipamd_inprocess,
    wait_for,
)
from vpcsim.testing import EmulatorHandle

OTHER_SUBNET3 = "subnet-sim00035"  # pod-3b, same zone


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


def vip(kube: Kube, ip: str) -> dict | None:  # type: ignore[type-arg]
    return next((o for o in kube.vpcips() if o["metadata"]["name"] == ip), None)


def still_here(kube: Kube, emu: EmulatorHandle, ip: str, node: str) -> list[str]:
    """Why ``ip`` is no longer on ``node`` (empty: it is, in the cloud and in its VpcIP)."""
    out = []
    eni = cloud_ips(emu).get(ip)
    node_enis = {o["metadata"]["name"] for o in kube.vpcenis(node)}
    if eni not in node_enis:
        out.append(f"{ip} is on {eni} in the cloud, not on an ENI of {node} {sorted(node_enis)}")
    o = vip(kube, ip)
    if o is None or o["spec"]["nodeName"] != node:
        out.append(f"VpcIP {ip}: {None if o is None else o['spec']}")
    return out


def drained_and_held(kube: Kube, agent: AgentStandIn, node: str) -> list[str]:
    kube.set_subnets(OTHER_SUBNET3)  # every free IP of pod-3 is asked back
    return wait_for(
        f"ipamd asks {node}'s pod-3 IPs back",
        lambda: len(agent.asked(node)) == 5 and agent.asked(node),
        60,
    )


def test_dynamic_ip_not_unassigned_while_the_grant_is_held(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.add_node("n1", "ins-sim00001")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("5 warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        agent.set_policy(HOLD)
        held = drained_and_held(kube, agent, "n1")
        signal, rest = held[0], held[1:]
        agent.grant(signal)
        wait_for(f"{signal} (granted) unassigned", lambda: signal not in cloud_ips(emu), 60)
        wait_for(f"VpcIP {signal} deleted", lambda: vip(kube, signal) is None, 60)
        # the same sync saw the others Releasing without a grant
        broken = [why for ip in rest for why in still_here(kube, emu, ip, "n1")]
        assert not broken, "unassigned without the agent's grant:\n" + "\n".join(broken)
        assert all(vip(kube, ip)["spec"]["state"] == m.IP_STATE_RELEASING for ip in rest)  # type: ignore[index]
        agent.set_policy("grant")  # answers what is open
        wait_for("the rest unassigned", lambda: not set(rest) & set(cloud_ips(emu)), 60)
        assert sorted(ip for ip, _ in agent.grants) == sorted(held)


def test_dynamic_ip_not_unassigned_when_the_agent_refuses(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.add_node("n1", "ins-sim00001")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("5 warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        agent.set_policy(REFUSE)
        held = drained_and_held(kube, agent, "n1")
        wait_for("every request answered with a refusal", lambda: agent.refused >= 5, 30)
        signal, rest = held[0], held[1:]
        agent.grant(signal)
        wait_for(f"{signal} (granted) unassigned", lambda: signal not in cloud_ips(emu), 60)
        broken = [why for ip in rest for why in still_here(kube, emu, ip, "n1")]
        assert not broken, "unassigned on a refusal:\n" + "\n".join(broken)
        assert agent.granted == 1


def test_dynamic_ip_not_unassigned_while_the_agent_is_dead(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.add_node("n1", "ins-sim00001")
    kube.add_node("n3", "ins-sim00003")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("5 warm IPs each", lambda: len(kube.vpcips("n1")) == len(kube.vpcips("n3")) == 5)
        n1_ips = {o["metadata"]["name"] for o in kube.vpcips("n1")}
        n3_ips = {o["metadata"]["name"] for o in kube.vpcips("n3")}
        agent.die("n1")
        agent.set_policy(HOLD, node="n3")
        drained_and_held(kube, agent, "n1")
        wait_for("n3's asked too", lambda: len(agent.asked("n3")) == 5, 60)
        signal = agent.asked("n3")[0]
        agent.grant(signal)  # n3's next sync runs while n1's agent is dead
        wait_for(f"{signal} unassigned", lambda: signal not in cloud_ips(emu), 60)
        agent.set_policy("grant", node="n3")
        wait_for("n3's pod-3 IPs gone", lambda: not n3_ips & set(cloud_ips(emu)), 60)
        broken = [why for ip in sorted(n1_ips) for why in still_here(kube, emu, ip, "n1")]
        assert not broken, "unassigned while the node's agent was dead:\n" + "\n".join(broken)
        assert not [g for g in agent.grants if g[1] == "n1"]
        agent.restart("n1")
        wait_for("n1's pod-3 IPs gone after the restart", lambda: not n1_ips & set(cloud_ips(emu)))
        assert {ip for ip, n in agent.grants if n == "n1"} == n1_ips


def start_static(kube: Kube, agent: AgentStandIn, name: str, node: str) -> tuple[str, dict]:  # type: ignore[type-arg]
    pod = kube.add_pod(name, node)
    rec = wait_for(
        f"static IP of {name} on {node}",
        lambda: agent.static_ready(f"default/{name}", pod["metadata"]["uid"], node),
        60,
    )
    agent.use(rec.ip, pod)
    return rec.ip, pod


def move(kube: Kube, name: str, dest: str) -> dict:  # type: ignore[type-arg]
    kube.delete_pod(name)
    path = f"/api/v1/namespaces/default/pods/{name}"
    wait_for(f"{name} gone", lambda: kube.api.get_or_none(path) is None)
    return kube.add_pod(name, dest)


@pytest.mark.parametrize("mode", [HOLD, REFUSE])
def test_static_ip_not_moved_before_the_old_agent_grants(
    kube: Kube, emu: EmulatorHandle, mode: str
) -> None:
    kube.add_node("n1", "ins-sim00001")
    kube.add_node("n3", "ins-sim00003")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        ip0, _ = start_static(kube, agent, "web-0", "n1")
        ip1, _ = start_static(kube, agent, "web-1", "n1")
        agent.set_policy(mode, node="n1")
        agent.free(ip0)  # CNI DEL on n1: the IPs are no longer used there
        agent.free(ip1)
        new0 = move(kube, "web-0", "n3")
        new1 = move(kube, "web-1", "n3")

        def acted_on(ip: str) -> bool:  # asked back, or (a mutant) taken without asking
            return ip in agent.asked("n1") or bool(still_here(kube, emu, ip, "n1"))

        wait_for("ipamd asks both back on n1", lambda: acted_on(ip0) and acted_on(ip1), 60)
        broken = [why for ip in (ip0, ip1) for why in still_here(kube, emu, ip, "n1")]
        assert not broken, "moved without the old agent's grant:\n" + "\n".join(broken)
        if mode == REFUSE:
            wait_for("both refused", lambda: agent.refused >= 2, 30)
        agent.grant(ip1)
        wait_for(
            "web-1 (granted) moved to n3",
            lambda: agent.static_ready("default/web-1", new1["metadata"]["uid"], "n3"),
            60,
        )
        broken = still_here(kube, emu, ip0, "n1")
        assert not broken, "moved without the old agent's grant:\n" + "\n".join(broken)
        claim = kube.claim("web-0")
        assert claim is not None and claim["status"]["phase"] == m.CLAIM_PHASE_MIGRATING
        agent.set_policy("grant", node="n1")
        wait_for(
            "web-0 moved after the grant",
            lambda: agent.static_ready("default/web-0", new0["metadata"]["uid"], "n3"),
            60,
        )


def test_static_ip_of_a_running_pod_not_moved_while_its_agent_is_dead(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.add_node("n1", "ins-sim00001")
    kube.add_node("n3", "ins-sim00003")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        ip0, _ = start_static(kube, agent, "web-0", "n1")
        ip1, _ = start_static(kube, agent, "web-1", "n3")
        agent.die("n1")  # the old pod keeps running: nobody does its CNI DEL
        new0 = move(kube, "web-0", "n3")
        agent.free(ip1)
        new1 = move(kube, "web-1", "n1")  # the signal: a move into n1 needs no n1 agent
        wait_for(
            "ipamd waits for the old pod",
            lambda: waits_for_old_pod(kube, "web-0", new0["metadata"]["uid"], ip0),
            60,
        )
        wait_for(
            "web-1 moved to n1",
            lambda: agent.static_ready("default/web-1", new1["metadata"]["uid"], "n1"),
            60,
        )
        broken = still_here(kube, emu, ip0, "n1")
        assert not broken, "a running pod's IP moved while its agent was dead:\n" + "\n".join(
            broken
        )
        assert vip(kube, ip0)["status"]["phase"] == m.IP_PHASE_IN_USE  # type: ignore[index]
        agent.restart("n1")
        agent.free(ip0)  # the restarted agent cleans up the gone pod: CNI DEL
        wait_for(
            "web-0 moved after the restart",
            lambda: agent.static_ready("default/web-0", new0["metadata"]["uid"], "n3"),
            60,
        )
