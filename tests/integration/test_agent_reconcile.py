"""The agent keeps the host set-up true (drift put back within a loop period),
collects pods whose links are gone, keeps cooldowns across restarts,
answers ipamd's release requests and waits (bounded) for static IPs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin, sh

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}


def eventually(
    what: str, cond: Callable[[], bool], agent: AgentProc, timeout: float = 20.0
) -> None:
    """Poll (not a timed assertion: the bound is only there to end a hung test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen\n{agent.logs()[-4000:]}")


def add(agent: AgentProc, pod: str, name: str, args_extra: str = "") -> tuple[int, dict | None]:  # type: ignore[type-arg]
    call = run_plugin(
        agent.plugin,
        "ADD",
        CONF,
        container_id=f"c-{name}",
        netns=f"/run/netns/{pod}",
        args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}{args_extra}",
        caller_ns=agent.node.ns,
    )
    return call.rc, call.out


def test_drift_is_reconciled(vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node)
    pod = netns_set.add("p")
    rc, out = add(agent, pod, "p")
    assert rc == 0, out
    ns = node.ns
    # "someone else" re-enables rp_filter and wipes our rules and a table route
    for key in ("all", "default", "eth1"):
        sh("sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=1", ns=ns)
    sh("ip", "rule", "del", "priority", "512", ns=ns)
    sh("ip", "rule", "del", "priority", "1536", ns=ns)
    table = sh("ip", "rule", ns=ns).stdout  # table number survives in the ENI's route table
    sh(
        "ip",
        "route",
        "flush",
        "table",
        str(2000 + int(sh("cat", "/sys/class/net/eth1/ifindex", ns=ns).stdout)),
        ns=ns,
    )
    assert "512:" not in table

    def healed() -> bool:
        rp = [
            sh("sysctl", "-n", f"net.ipv4.conf.{k}.rp_filter", ns=ns).stdout.strip()
            for k in ("all", "default", "eth1")
        ]
        rules = sh("ip", "rule", ns=ns).stdout
        routes = sh("ip", "route", "show", "table", "all", ns=ns).stdout
        return (
            rp == ["0", "0", "0"]
            and "512:\tfrom all to 10.10.0.100" in rules
            and "1536:\tfrom 10.10.0.100" in rules
            and "default via 10.10.0.1 dev eth1 table 20" in routes
        )

    eventually("rp_filter, rules and ENI table restored", healed, agent)
    sh("ping", "-c1", "-W5", node.ip, ns=pod)
    assert "drift corrected" in agent.logs()


def test_gone_pod_collected_cooldown_survives_restart(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101"]])
    # no refill wait: with every IP used or cooling the ADD answers at once (the wait, and
    # the floor reuse after it, are tests of their own)
    agent = agents(node, "--refill-wait", "0")
    pod = netns_set.add("p")
    assert add(agent, pod, "p")[0] == 0
    sh("ip", "netns", "del", pod)  # the runtime lost the pod without a DEL
    netns_set.names.remove(pod)
    agent.settled(lambda c: c["allocations"] == [] and "10.10.0.100" in c["cooldown"])
    agent.kill()
    agent.start()
    # cooldown kept across the restart: the next pod gets the other IP
    pod2 = netns_set.add("q")
    rc, out = add(agent, pod2, "q")
    assert rc == 0 and out and out["ips"][0]["address"] == "10.10.0.101/32", out
    # and with every IP used or cooling down, ADD says "try again later"
    pod3 = netns_set.add("r")
    rc, out = add(agent, pod3, "r")
    assert rc != 0 and out and out["code"] == 11 and "no free IP" in out["msg"], out


def test_release_handshake_and_usage_report(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101"]])
    agent = agents(node, "--cooldown", "0")
    pod = netns_set.add("p")
    assert add(agent, pod, "p")[0] == 0
    status_path = agent.ip_file.with_name("ips.json.status.json")

    def status() -> dict:  # type: ignore[type-arg]
        try:
            return json.loads(status_path.read_text())
        except (OSError, ValueError):
            return {}

    eventually(
        "usage reported", lambda: status().get("10.10.0.100", {}).get("phase") == "InUse", agent
    )
    assert status()["10.10.0.100"]["podName"] == "p"
    # ipamd asks both IPs back: the free one is granted, the used one is not
    data = node.ip_source()
    for ip in data["ips"]:
        ip["state"] = "Releasing"
    agent.write_ips(data)
    eventually(
        "free IP granted back",
        lambda: status().get("10.10.0.101", {}).get("phase") == "Released",
        agent,
    )
    assert status()["10.10.0.100"]["phase"] == "InUse"
    # the granted IP is never offered again
    pod2 = netns_set.add("q")
    rc, out = add(agent, pod2, "q")
    assert rc != 0 and out and out["code"] == 11, out


def test_static_ip_waits_for_its_claim(vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101"]])
    agent = agents(node, "--static-ip-wait", "30", eni_only=False)
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/web-0": {
                    "uid": "u1",
                    "annotations": {
                        "tke.cloud.tencent.com/networks": "tke-route-eni",
                        "tke.cloud.tencent.com/vpc-ip-claim-delete-policy": "Never",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "StatefulSet",
                            "name": "web",
                            "uid": "u-web",
                            "controller": True,
                        }
                    ],
                },
            }
        )
    )
    pod = netns_set.add("w")
    result: dict[str, object] = {}

    def run_add() -> None:
        result["call"] = add(agent, pod, "web-0")

    t = threading.Thread(target=run_add)
    t.start()
    time.sleep(1.0)  # ADD is now waiting for ipamd to move the claimed IP here
    assert t.is_alive()
    data = node.ip_source()
    data["ips"].append(
        {"ip": "10.10.0.150", "eni": "eni-0101", "claim": "default/web-0", "reservedPodUid": "u1"}
    )
    sh("ip", "route", "add", "10.10.0.150/32", "dev", node.enis[0].vpc_if, ns=vpc.ns)
    agent.write_ips(data)
    t.join(timeout=60)
    rc, out = result["call"]  # type: ignore[misc]
    assert rc == 0 and out["ips"][0]["address"] == "10.10.0.150/32", out  # type: ignore[index]
    # DEL keeps it reserved for the claim (no cooldown), the same pod gets it back
    call = run_plugin(
        agent.plugin,
        "DEL",
        CONF,
        container_id="c-web-0",
        netns=f"/run/netns/{pod}",
        args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
        caller_ns=node.ns,
    )
    assert call.rc == 0
    agent.settled(lambda c: c["allocations"] == [] and "10.10.0.150" not in c["cooldown"])
    assert add(agent, pod, "web-0")[1]["ips"][0]["address"] == "10.10.0.150/32"  # type: ignore[index]


def test_static_ip_bound_gives_try_again(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node, "--static-ip-wait", "0.5", eni_only=False)
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/db-0": {
                    "uid": "u2",
                    "annotations": {
                        "tke.cloud.tencent.com/networks": "tke-route-eni",
                        "tke.cloud.tencent.com/vpc-ip-claim-delete-policy": "Never",
                    },
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "StatefulSet",
                            "name": "db",
                            "uid": "u-db",
                            "controller": True,
                        }
                    ],
                },
            }
        )
    )
    pod = netns_set.add("d")
    rc, out = add(agent, pod, "db-0")
    assert rc != 0 and out and out["code"] == 11 and "default/db-0" in out["msg"], out
    agent.settled(lambda c: c["allocations"] == [])


def test_orphans_removed_foreign_links_kept(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node)
    ns = node.ns
    sh("ip", "link", "add", "tke0123456789ab", "type", "veth", "peer", "name", "orphanpeer", ns=ns)
    sh("ip", "link", "add", "tke-keepme", "type", "veth", "peer", "name", "keeppeer", ns=ns)
    # a stale rule for one of the node's IPs that no pod uses
    sh("ip", "rule", "add", "to", "10.10.0.100", "lookup", "main", "priority", "512", ns=ns)

    def cleaned() -> bool:
        links = sh("ip", "-o", "link", ns=ns).stdout
        rules = sh("ip", "rule", ns=ns).stdout
        return "tke0123456789ab" not in links and "10.10.0.100" not in rules

    eventually("orphan veth and stale rule removed", cleaned, agent)
    assert "tke-keepme" in sh("ip", "-o", "link", ns=ns).stdout
