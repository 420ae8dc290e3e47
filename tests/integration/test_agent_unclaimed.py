"""The agent's side of ``kubectl delete vipc`` of a running StatefulSet pod
(core.models): once ipamd has dropped the claim and marked the address with
the pod's UID (``spec.unclaimedPodUid``), that pod UID is dynamic — a new
sandbox of it (runtime restart, node reboot) gets the address it kept, at
once, instead of waiting for a claim that is never re-made. A new pod of the
StatefulSet (a new UID) is static again and waits for its claim."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin
from tests.integration.test_agent_claim_policy import NETWORKS, POLICY, owner
from tests.integration.test_agent_reconcile import CONF

KEPT = "10.10.0.100"


def cni(agent: AgentProc, command: str, pod: str, container: str, uid: str) -> Any:
    return run_plugin(
        agent.plugin,
        command,
        CONF,
        container_id=container,
        netns=f"/run/netns/{pod}",
        args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=db-0;K8S_POD_UID={uid}",
        caller_ns=agent.node.ns,
    )


def view(agent: AgentProc, **kept: str) -> None:
    """The node's IPs as ipamd records them; ``kept``: the spec of KEPT."""
    data = agent.node.ip_source()
    for ip in data["ips"]:
        if ip["ip"] == KEPT:
            ip.update(kept)
    agent.write_ips(data)


def pod_file(agent: AgentProc, uid: str) -> None:
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/db-0": {
                    "uid": uid,
                    "annotations": {**NETWORKS, POLICY: "Never"},
                    "ownerReferences": [owner("StatefulSet", "db")],
                }
            }
        )
    )


def started(vpc: Vpc, agents: AgentFactory) -> AgentProc:
    node = vpc.add_node(1, [["10.10.0.20", KEPT, "10.10.0.101"]])
    agent = agents(node, "--static-ip-wait", "0.5", eni_only=False, start=False)
    pod_file(agent, "u1")
    view(agent, claim="default/db-0", reservedPodUid="u1")
    agent.start()
    return agent


def unclaimed(agent: AgentProc) -> None:
    """kubectl delete vipc db-0: ipamd drops the claim and marks the address
    with the pod's UID. The agent restarts (as on a node reboot), so that its
    view is the new one when the next ADD comes (the file source polls)."""
    agent.kill()
    view(agent, unclaimedPodUid="u1")
    agent.start()


def address(out: dict[str, Any] | None) -> str:
    assert out is not None and "ips" in out, out
    return str(out["ips"][0]["address"]).split("/")[0]


def test_new_sandbox_after_del_gets_the_kept_address(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    agent = started(vpc, agents)
    first = netns_set.add("s1")
    call = cni(agent, "ADD", first, "c1", "u1")
    assert call.rc == 0 and address(call.out) == KEPT, call.out  # its static IP
    unclaimed(agent)
    # the runtime restarts: the old sandbox's DEL, then a new sandbox
    assert cni(agent, "DEL", first, "c1", "u1").rc == 0
    second = netns_set.add("s2")
    call = cni(agent, "ADD", second, "c2", "u1")
    assert call.rc == 0, f"a new sandbox of the unclaimed pod got no IP: {call.out}"
    assert address(call.out) == KEPT, call.out
    alloc = agent.checkpoint["allocations"]
    assert [(a["ip"], a["container_id"], a["claim"]) for a in alloc] == [(KEPT, "c2", "")]


def test_new_sandbox_without_del_takes_the_kept_address_over(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    agent = started(vpc, agents)
    first = netns_set.add("s1")
    assert address(cni(agent, "ADD", first, "c1", "u1").out) == KEPT
    unclaimed(agent)
    second = netns_set.add("s2")  # the old sandbox died; its DEL has not come
    call = cni(agent, "ADD", second, "c2", "u1")
    assert call.rc == 0, f"a new sandbox of the unclaimed pod got no IP: {call.out}"
    assert address(call.out) == KEPT, call.out
    alloc = agent.checkpoint["allocations"]
    assert [(a["ip"], a["container_id"]) for a in alloc] == [(KEPT, "c2")]


def test_a_new_pod_of_the_statefulset_is_static_again(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    agent = started(vpc, agents)
    first = netns_set.add("s1")
    assert address(cni(agent, "ADD", first, "c1", "u1").out) == KEPT
    unclaimed(agent)
    assert cni(agent, "DEL", first, "c1", "u1").rc == 0
    pod_file(agent, "u2")  # the pod was deleted and re-created: a new UID
    call = cni(agent, "ADD", netns_set.add("s2"), "c2", "u2")
    # ipamd makes a claim for the new pod: the agent waits for it, never takes
    # the old pod's address nor a warm one
    assert call.rc != 0 and call.out and call.out["code"] == 11, call.out
    assert "default/db-0" in call.out["msg"], call.out
