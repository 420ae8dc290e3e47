"""The agent starts with a checkpoint it cannot read (garbage, a newer
version, an empty file): it must not cut the node's running pods. It
rebuilds the allocations from the live links (the host route names the IP,
the veth's MAC is derived from its name and IP, the rule names the ENI
table, the peer sits in the pod's netns), keeps what it cannot explain,
refuses ADD while a live pod link is unexplained (rather than risk giving
its IP twice), and says so in the log and the metrics. A checkpoint whose
last line was torn by a crash still loads its last good snapshot. Real
namespaces, the agent as a process."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin, sh
from tests.integration.test_agent_health import get
from tests.integration.test_agent_reconcile import eventually

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
IPS = ["10.10.0.20", "10.10.0.100", "10.10.0.101", "10.10.0.102", "10.10.0.103"]
HEALTH = "127.0.0.1:9867"


def cni(agent: AgentProc, verb: str, name: str, ns: str) -> tuple[int, dict | None]:  # type: ignore[type-arg]
    call = run_plugin(
        agent.plugin,
        verb,
        CONF,
        container_id=f"c-{name}",
        netns=f"/run/netns/{ns}",
        args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}",
        caller_ns=agent.node.ns,
    )
    return call.rc, call.out


def ip_of(out: dict | None) -> str:  # type: ignore[type-arg]
    assert out is not None
    return str(out["ips"][0]["address"].split("/")[0])


def start_two_pods(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> tuple[AgentProc, dict[str, tuple[str, str]]]:
    node = vpc.add_node(1, [IPS])
    agent = agents(node, "--health-address", HEALTH)
    pods: dict[str, tuple[str, str]] = {}
    for name in ("a", "b"):
        ns = netns_set.add(name)
        rc, out = cni(agent, "ADD", name, ns)
        assert rc == 0, out
        pods[name] = (ns, ip_of(out))
    return agent, pods


def metric(agent: AgentProc, name: str) -> float:
    status, body = get(agent.node.ns, f"http://{HEALTH}/metrics")
    assert status == 200
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} missing:\n{body}")


CORRUPT = {
    "garbage": b"\x00\x17not json at all\n",
    "newer-version": json.dumps({"version": 2, "allocations": []}).encode() + b"\n",
    "empty": b"",
}


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_unreadable_checkpoint_keeps_running_pods(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory, kind: str
) -> None:
    agent, pods = start_two_pods(vpc, netns_set, agents)
    ns = agent.node.ns
    veths_before = sorted(a["host_veth"] for a in agent.checkpoint["allocations"])
    agent.kill()
    path = agent.workdir / "state" / "checkpoint.json"
    path.write_bytes(CORRUPT[kind])
    agent.start()
    # the running pods keep their links and their network
    links = sh("ip", "-o", "link", ns=ns).stdout
    for veth in veths_before:
        assert veth in links, f"{veth} deleted at start:\n{agent.logs()[-3000:]}"
    for pod_ns, _ip in pods.values():
        sh("ping", "-c1", "-W5", agent.node.ip, ns=pod_ns)
    # their IPs are accounted for again, and never handed out twice
    rebuilt = {a["ip"]: a for a in agent.checkpoint["allocations"]}
    assert set(rebuilt) == {ip for _ns, ip in pods.values()}, rebuilt
    for pod_ns, ip in pods.values():
        assert rebuilt[ip]["netns"] == f"/run/netns/{pod_ns}", rebuilt[ip]
    c = netns_set.add("c")
    rc, out = cni(agent, "ADD", "c", c)
    assert rc == 0, out
    assert ip_of(out) not in rebuilt
    # the runtime's DEL of a rebuilt pod finds it (same sandbox netns)
    a_ns, a_ip = pods["a"]
    assert cni(agent, "DEL", "a", a_ns)[0] == 0
    agent.settled(lambda cp: a_ip not in {x["ip"] for x in cp["allocations"]})
    assert a_ip not in sh("ip", "rule", ns=ns).stdout
    sh("ping", "-c1", "-W5", agent.node.ip, ns=pods["b"][0])
    # said loudly: log, metric; the unreadable file kept for a post-mortem
    logs = agent.logs()
    assert "checkpoint unreadable" in logs, logs[-3000:]
    assert metric(agent, "tke_eni_agent_checkpoint_unreadable_total") == 1.0
    assert metric(agent, "tke_eni_agent_recovered_allocations_total") == 2.0
    kept = [p for p in path.parent.iterdir() if ".unreadable" in p.name]
    assert kept and kept[0].read_bytes() == CORRUPT[kind]


def test_unexplained_link_blocks_add_until_gone(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    agent, pods = start_two_pods(vpc, netns_set, agents)
    ns = agent.node.ns
    agent.kill()
    (agent.workdir / "state" / "checkpoint.json").write_bytes(b"{torn")
    # a link of ours that nothing explains: no route, a MAC that names no IP,
    # its peer in a netns the agent cannot see (no /run/netns entry)
    hidden = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    try:
        sh("ip", "link", "add", "tke0123456789ab", "type", "veth", "peer", "name", "x0", ns=ns)
        sh("ip", "link", "set", "x0", "netns", str(hidden.pid), ns=ns)
        agent.start()
        rc, out = cni(agent, "ADD", "c", netns_set.add("c"))
        assert rc != 0 and out and out["code"] == 11, out
        assert "tke0123456789ab" in out["msg"] and "not accounted for" in out["msg"], out
        assert "tke0123456789ab" in sh("ip", "-o", "link", ns=ns).stdout  # kept
        for pod_ns, _ip in pods.values():
            sh("ping", "-c1", "-W5", agent.node.ip, ns=pod_ns)
        assert metric(agent, "tke_eni_agent_recovery_unexplained_links") == 1.0
        # a restart meanwhile (its checkpoint is readable again) does not forget
        # that the rebuild is unfinished: the link is still kept, ADD still refused
        agent.kill()
        agent.start()
        rc, out = cni(agent, "ADD", "c", netns_set.add("c2"))
        assert rc != 0 and out and out["code"] == 11, out
        assert "tke0123456789ab" in sh("ip", "-o", "link", ns=ns).stdout
    finally:
        hidden.kill()
        hidden.wait()
    # its netns is gone, so is the link: ADD is served again
    d = netns_set.add("d")
    eventually(
        "ADD served once the unexplained link is gone",
        lambda: cni(agent, "ADD", "d", d)[0] == 0,
        agent,
    )
    assert metric(agent, "tke_eni_agent_recovery_unexplained_links") == 0.0


@pytest.mark.parametrize(
    "tail",
    [b'{"version": 1, "allocations": [{"ip": "10.10.0.1', b"\x00" * 64],
    ids=["torn-json", "zero-filled"],
)
def test_torn_last_line_loads_last_good_snapshot(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory, tail: bytes
) -> None:
    agent, pods = start_two_pods(vpc, netns_set, agents)
    before = agent.checkpoint
    agent.kill()
    with open(agent.workdir / "state" / "checkpoint.json", "ab") as fh:
        fh.write(tail)
    agent.start()
    after = agent.checkpoint
    assert after["allocations"] == before["allocations"]  # container ids and all
    assert "checkpoint unreadable" not in agent.logs()
    for pod_ns, _ip in pods.values():
        sh("ping", "-c1", "-W5", agent.node.ip, ns=pod_ns)


def test_cooldown_survives_an_unreadable_checkpoint(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    """A released IP's cooldown is not on the links; the status the API holds
    (here the file source's status file) still has it."""
    node = vpc.add_node(1, [IPS])
    agent = agents(node)
    a = netns_set.add("a")
    rc, out = cni(agent, "ADD", "a", a)
    assert rc == 0, out
    cooled = ip_of(out)
    assert cni(agent, "DEL", "a", a)[0] == 0
    sh("ip", "netns", "del", a)  # the runtime removes the sandbox: its veth goes too
    netns_set.names.remove(a)
    status_path = agent.ip_file.with_name("ips.json.status.json")

    def reported_cooldown() -> bool:
        try:
            return json.loads(status_path.read_text())[cooled]["phase"] == "Cooldown"
        except (OSError, ValueError, KeyError):
            return False

    eventually("cooldown reported", reported_cooldown, agent)
    agent.kill()
    (agent.workdir / "state" / "checkpoint.json").write_bytes(b"garbage\n")
    agent.start()
    rc, out = cni(agent, "ADD", "b", netns_set.add("b"))
    assert rc == 0, out
    assert ip_of(out) != cooled, "an IP still cooling down was handed out again"
    assert cooled in agent.checkpoint["cooldown"]
