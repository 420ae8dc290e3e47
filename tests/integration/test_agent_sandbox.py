"""A pod's sandbox recreated before the old one's DEL, and pods that do not
ask for an ENI IP when no default network is configured."""

from __future__ import annotations

import json

from tests.fixtures_netns import AgentFactory, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
ARGS = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"


def test_recreated_sandbox_replaces_the_old_one(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101", "10.10.0.102"]])
    agent = agents(node)
    old_ns, new_ns = netns_set.add("old"), netns_set.add("new")
    first = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id="sb1",
        netns=f"/run/netns/{old_ns}",
        args=ARGS,
        caller_ns=node.ns,
    )
    second = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id="sb2",
        netns=f"/run/netns/{new_ns}",
        args=ARGS,
        caller_ns=node.ns,
    )
    assert first.rc == 0 and second.rc == 0 and first.out and second.out, second.stdout
    old_ip = first.out["ips"][0]["address"].split("/")[0]
    assert second.out["ips"][0]["address"] != first.out["ips"][0]["address"]
    assert (
        first.out["interfaces"][0]["name"] == second.out["interfaces"][0]["name"]
    )  # same pod, same name
    state = agent.settled(lambda c: [a["container_id"] for a in c["allocations"]] == ["sb2"])
    assert old_ip in state["cooldown"]
    assert old_ip not in sh("ip", "rule", ns=node.ns).stdout  # its rules went at once
    sh("ping", "-c1", "-W5", node.ip, ns=new_ns)
    # the late DEL of the old sandbox changes nothing for the new one
    late = run_plugin(
        agent.plugin,
        "DEL",
        CONF,
        container_id="sb1",
        netns=f"/run/netns/{old_ns}",
        args=ARGS,
        caller_ns=node.ns,
    )
    assert late.rc == 0
    sh("ping", "-c1", "-W5", node.ip, ns=new_ns)
    agent.settled(lambda c: [a["container_id"] for a in c["allocations"]] == ["sb2"])


def test_unannotated_pod_without_default_network(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node, eni_only=False)
    agent.pod_file.write_text(json.dumps({"default/web-0": {"uid": "u", "annotations": {}}}))
    pod = netns_set.add("p")
    call = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id="c",
        netns=f"/run/netns/{pod}",
        args=ARGS,
        caller_ns=node.ns,
    )
    assert call.rc != 0 and call.out and call.out["code"] == 7, call.stdout
    assert "tke.cloud.tencent.com/networks" in call.out["msg"]
