"""kill -9 of the agent between any two ADD steps, then the runtime's retry:
the pod ends up with exactly one IP, nothing leaks, nothing is assigned
twice."""

from __future__ import annotations

import pytest

from tests.fixtures_netns import AgentFactory, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
STEPS = ("after-reserve", "after-veth", "after-pod", "after-route", "after-rules", "before-reply")


@pytest.mark.parametrize("step", STEPS)
def test_add_retried_after_kill(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory, step: str
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101", "10.10.0.102"]])
    agent = agents(node, start=False)
    agent.start("--fault", step)
    pod = netns_set.add("p")
    args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"

    def add() -> tuple[int, dict | None]:  # type: ignore[type-arg]
        call = run_plugin(
            agent.plugin,
            "ADD",
            CONF,
            container_id="c-p",
            netns=f"/run/netns/{pod}",
            args=args,
            caller_ns=node.ns,
        )
        return call.rc, call.out

    rc, out = add()
    assert rc != 0 and out and out["code"] == 11, out  # the agent died mid-ADD
    assert agent.wait_exit() == -9
    agent.start()  # recovery against the live links
    rc, out = add()  # the runtime retries
    assert rc == 0 and out, out + agent.logs()  # type: ignore[operator]
    ip = out["ips"][0]["address"].split("/")[0]

    state = agent.checkpoint
    assert [a["ip"] for a in state["allocations"]] == [ip]
    pod_addrs = sh("ip", "-4", "-o", "addr", "show", "eth0", ns=pod).stdout
    assert f"{ip}/32" in pod_addrs and pod_addrs.count("inet ") == 1
    links = [ln for ln in sh("ip", "-o", "link", ns=node.ns).stdout.splitlines() if ": tke" in ln]
    assert len(links) == 1, links
    rules = sh("ip", "rule", ns=node.ns).stdout
    assert rules.count("512:") == 1 and rules.count("1536:") == 1, rules
    sh("ping", "-c1", "-W5", node.ip, ns=pod)

    # every IP is accounted for: in use, cooling down or free; none twice
    cooling = set(state["cooldown"])
    assert ip not in cooling
    call = run_plugin(
        agent.plugin,
        "DEL",
        dict(CONF, prevResult=out),
        container_id="c-p",
        netns=f"/run/netns/{pod}",
        args=args,
        caller_ns=node.ns,
    )
    assert call.rc == 0
    agent.settled(lambda c: c["allocations"] == [])
    assert "10.10.0.1" not in sh("ip", "rule", ns=node.ns).stdout
