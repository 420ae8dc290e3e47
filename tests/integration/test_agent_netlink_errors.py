"""One netlink error on an ADD path must not disable the node's clean-up:
whatever step fails, the ADD's in-flight mark is cleared, and afterwards
the reconcile loop still releases the IP of a pod whose link is gone and
removes an orphan veth. Real namespaces; the agent raises a NetlinkError
once at the chosen step (``--fault error:<step>``)."""

from __future__ import annotations

import pytest

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin, sh
from tests.integration.test_agent_reconcile import eventually

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
# clean-earlier: removing the rules of an earlier sandbox of the same pod
STEPS = ("clean-earlier", "after-veth", "after-pod", "after-route", "after-rules")


def cni(agent: AgentProc, verb: str, cid: str, ns: str, pod: str) -> tuple[int, dict | None]:  # type: ignore[type-arg]
    call = run_plugin(
        agent.plugin,
        verb,
        CONF,
        container_id=cid,
        netns=f"/run/netns/{ns}",
        args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}",
        caller_ns=agent.node.ns,
    )
    return call.rc, call.out


@pytest.mark.parametrize("step", STEPS)
def test_clean_up_survives_a_netlink_error(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory, step: str
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101", "10.10.0.102"]])
    agent = agents(node, "--fault", f"error:{step}", "--cooldown", "0")
    # pod a: a sandbox, then a second one before the first one's DEL (the
    # runtime DELs any sandbox whose ADD failed, as kubelet does)
    first, second = netns_set.add("a1"), netns_set.add("a2")
    for cid, ns in (("a1", first), ("a2", second)):
        rc, out = cni(agent, "ADD", cid, ns, "a")
        if rc != 0:
            assert out and out["code"] == 5 and "fault injection" in out["msg"], out
            assert cni(agent, "DEL", cid, ns, "a")[0] == 0
    assert "fault injection" in agent.logs()  # the error did happen
    # pod b comes and its sandbox vanishes without a DEL: its IP is released
    b = netns_set.add("b")
    rc, out = cni(agent, "ADD", "b", b, "b")
    assert rc == 0 and out, out
    ip_b = out["ips"][0]["address"].split("/")[0]
    sh("ip", "netns", "del", b)
    netns_set.names.remove(b)
    eventually(
        "allocation of a pod whose link is gone released",
        lambda: ip_b not in {a["ip"] for a in agent.checkpoint["allocations"]},
        agent,
    )
    # a veth of ours that nothing explains is removed
    sh("ip", "link", "add", "tke0123456789ab", "type", "veth", "peer", "name", "orph", ns=node.ns)
    eventually(
        "orphan veth removed",
        lambda: "tke0123456789ab" not in sh("ip", "-o", "link", ns=node.ns).stdout,
        agent,
    )
    # no IP twice, every live pod still has its own
    allocs = agent.checkpoint["allocations"]
    assert len({a["ip"] for a in allocs}) == len(allocs)
