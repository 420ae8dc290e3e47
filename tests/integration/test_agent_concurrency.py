"""Many concurrent ADDs and DELs: every pod gets its own IP, every pod works,
and everything is given back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.fixtures_netns import AgentFactory, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}


def test_concurrent_pods_get_distinct_ips(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    pool = [f"10.10.0.{i}" for i in range(100, 124)]
    node = vpc.add_node(1, [["10.10.0.20", *pool[:12]], ["10.10.0.21", *pool[12:]]])
    agent = agents(node)
    pods = [netns_set.add(f"c{i}") for i in range(20)]

    def call(cmd: str, i: int) -> dict | None:  # type: ignore[type-arg]
        res = run_plugin(
            agent.plugin,
            cmd,
            CONF,
            container_id=f"cid{i}",
            netns=f"/run/netns/{pods[i]}",
            args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=c{i}",
            caller_ns=node.ns,
        )
        assert res.rc == 0, res.stdout + res.stderr
        return res.out

    with ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(lambda i: call("ADD", i), range(20)))
    ips = [r["ips"][0]["address"] for r in results if r]
    assert len(ips) == 20 and len(set(ips)) == 20, ips
    # packed onto the first ENI until it is full ("fewest ENIs")
    assert {ip.split("/")[0] for ip in ips} >= set(pool[:12])
    state = agent.checkpoint
    assert sorted(a["ip"] + "/32" for a in state["allocations"]) == sorted(ips)
    for i in (0, 7, 19):
        sh("ping", "-c1", "-W5", node.ip, ns=pods[i])
    with ThreadPoolExecutor(max_workers=20) as ex:
        list(ex.map(lambda i: call("DEL", i), range(20)))
    agent.settled(lambda c: c["allocations"] == [] and len(c["cooldown"]) == 20)
    assert "10.10.0.1" not in sh("ip", "rule", ns=node.ns).stdout
