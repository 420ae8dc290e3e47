"""Two nodes in one "VPC" on this machine: pods on both, ping pod<->pod across
nodes and pod<->node, and show that a pod's packets leave through the ENI
its IP belongs to (policy routing really in use, not the main table)."""

from __future__ import annotations

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}


def add_pod(agent: AgentProc, nss: NetnsSet, name: str) -> tuple[str, str]:
    pod = nss.add(name)
    call = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id=f"c-{name}",
        netns=f"/run/netns/{pod}",
        args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}",
        caller_ns=agent.node.ns,
    )
    assert call.rc == 0 and call.out, call.stdout + agent.logs()
    return pod, call.out["ips"][0]["address"].split("/")[0]


def test_two_nodes_pod_to_pod_and_node(vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory) -> None:
    # node 1: two ENIs; the first one's IPs are all taken by a marker entry so
    # the pod lands on the second ENI (eth2), which is not the main table's way out
    n1 = vpc.add_node(
        1, [["10.10.0.20", "10.10.0.100"], ["10.10.0.21", "10.10.0.110", "10.10.0.111"]]
    )
    n2 = vpc.add_node(2, [["10.10.0.30", "10.10.0.120", "10.10.0.121"]])
    ips1 = n1.ip_source()
    ips1["ips"] = [i for i in ips1["ips"] if i["eni"] == "eni-0102"]
    a1 = agents(n1)
    a1.write_ips(ips1)
    a1.kill()
    a1.start()
    a2 = agents(n2)

    pod_a, ip_a = add_pod(a1, netns_set, "pa")
    pod_b, ip_b = add_pod(a2, netns_set, "pb")
    assert ip_a == "10.10.0.110" and ip_b == "10.10.0.120"

    eni2 = n1.enis[1]
    before = {e.vpc_if: vpc.counters(e.vpc_if) for e in n1.enis} | {
        n1.vpc_if: vpc.counters(n1.vpc_if)
    }
    sh("ping", "-c5", "-i0.2", "-W5", ip_a, ns=pod_b)  # pod <-> pod across nodes
    after = {k: vpc.counters(k) for k in before}
    # pod A's five replies came out of node 1 through ENI 2, none through eth0 or ENI 1
    assert after[eni2.vpc_if] - before[eni2.vpc_if] >= 5, (before, after)
    assert after[n1.vpc_if] - before[n1.vpc_if] < 5, (before, after)
    assert after[n1.enis[0].vpc_if] - before[n1.enis[0].vpc_if] < 5, (before, after)

    sh("ping", "-c2", "-W5", ip_b, ns=pod_a)  # and the other way
    sh("ping", "-c2", "-W5", n1.ip, ns=pod_a)  # pod -> own node
    sh("ping", "-c2", "-W5", n2.ip, ns=pod_a)  # pod -> other node
    sh("ping", "-c2", "-W5", ip_a, ns=n1.ns)  # node -> own pod
    sh("ping", "-c2", "-W5", ip_a, ns=n2.ns)  # node -> other node's pod (through the VPC)

    table = sh("ip", "rule", "show", "from", ip_a, ns=n1.ns).stdout
    assert "lookup 20" in table
