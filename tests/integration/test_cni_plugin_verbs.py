"""The tke-route-eni executable run exactly as a runtime runs it (env + stdin,
a fresh process per call) against a running tke-eni-agent in a node netns."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures_netns import AgentFactory, AgentProc, NetnsSet, Vpc, run_plugin, sh

VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
POD_ARGS = (
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={cid}"
)


def conf(version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "tke-route-eni", "type": "tke-route-eni", **extra}


@pytest.fixture
def node_agent(vpc: Vpc, agents: AgentFactory) -> tuple[Vpc, AgentProc]:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100", "10.10.0.101", "10.10.0.102"]])
    return vpc, agents(node)


def _add(
    agent: AgentProc, nss: NetnsSet, name: str, version: str = "1.0.0"
) -> tuple[str, str, dict[str, Any]]:
    pod = nss.add(name)
    cid = f"cid-{name}"
    call = run_plugin(
        agent.plugin,
        "ADD",
        conf(version),
        container_id=cid,
        netns=f"/run/netns/{pod}",
        args=POD_ARGS.format(name=name, cid=cid),
        caller_ns=agent.node.ns,
    )
    assert call.rc == 0, call.stdout + call.stderr + agent.logs()
    assert call.out is not None
    return pod, cid, call.out


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_every_version(
    node_agent: tuple[Vpc, AgentProc], netns_set: NetnsSet, version: str
) -> None:
    _vpc, agent = node_agent
    pod, cid, result = _add(agent, netns_set, "p" + version.replace(".", ""), version)
    assert result["cniVersion"] == version
    ip = result["ips"][0]
    assert ip["address"] == "10.10.0.100/32" and ip["gateway"] == "169.254.1.1"
    assert ip["interface"] == 1 and result["interfaces"][1]["sandbox"] == f"/run/netns/{pod}"
    assert ("version" in ip) == (version == "0.4.0")
    assert ("mtu" in result["interfaces"][0]) == (version == "1.1.0")
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    # the pod really has the network the result describes
    assert "10.10.0.100/32" in sh("ip", "-4", "addr", "show", "eth0", ns=pod).stdout
    neigh = sh("ip", "neigh", "show", "169.254.1.1", ns=pod).stdout
    assert "PERMANENT" in neigh and result["interfaces"][0]["mac"] in neigh
    rules = sh("ip", "rule", ns=agent.node.ns).stdout
    assert "512:\tfrom all to 10.10.0.100 lookup main" in rules
    assert "1536:\tfrom 10.10.0.100 lookup 20" in rules
    sh("ping", "-c1", "-W5", agent.node.ip, ns=pod)
    assert agent.checkpoint["allocations"][0]["container_id"] == cid

    args = POD_ARGS.format(name="x", cid=cid)
    check = run_plugin(
        agent.plugin,
        "CHECK",
        conf(version, prevResult=result),
        container_id=cid,
        netns=f"/run/netns/{pod}",
        args=args,
    )
    assert check.rc == 0 and check.stdout == "", check.stdout
    # a prevResult that is not what ADD returned is refused
    wrong = json.loads(json.dumps(result))
    wrong["interfaces"][0]["name"] = "tkeother"
    stale = run_plugin(
        agent.plugin,
        "CHECK",
        conf(version, prevResult=wrong),
        container_id=cid,
        netns=f"/run/netns/{pod}",
        args=args,
    )
    assert stale.rc != 0 and stale.out and stale.out["code"] == 100, stale.stdout
    # CHECK notices a broken pod: the gateway neighbour removed
    sh("ip", "neigh", "del", "169.254.1.1", "dev", "eth0", ns=pod)
    broken = run_plugin(
        agent.plugin,
        "CHECK",
        conf(version, prevResult=result),
        container_id=cid,
        netns=f"/run/netns/{pod}",
        args=args,
    )
    assert broken.rc != 0 and broken.out and broken.out["code"] == 100, broken.stdout
    assert "169.254.1.1" in broken.out["msg"]

    for _ in range(3):  # DEL is idempotent
        gone = run_plugin(
            agent.plugin,
            "DEL",
            conf(version, prevResult=result),
            container_id=cid,
            netns=f"/run/netns/{pod}",
            args=args,
        )
        assert gone.rc == 0 and gone.stdout == "", gone.stdout
    agent.settled(lambda c: c["allocations"] == [] and "10.10.0.100" in c["cooldown"])
    assert "10.10.0.100" not in sh("ip", "rule", ns=agent.node.ns).stdout
    # missing netns on DEL is success too
    sh("ip", "netns", "del", pod)
    netns_set.names.remove(pod)
    again = run_plugin(
        agent.plugin, "DEL", conf(version), container_id=cid, netns=f"/run/netns/{pod}", args=args
    )
    assert again.rc == 0, again.stdout


def test_version_status_gc(node_agent: tuple[Vpc, AgentProc], netns_set: NetnsSet) -> None:
    _vpc, agent = node_agent
    for version in VERSIONS:
        call = run_plugin(agent.plugin, "VERSION", {"cniVersion": version}, ifname="")
        assert call.rc == 0
        assert call.out == {"cniVersion": version, "supportedVersions": list(VERSIONS)}
    status = run_plugin(agent.plugin, "STATUS", conf("1.1.0"), ifname="")
    assert status.rc == 0 and status.stdout == "", status.stdout
    old = run_plugin(agent.plugin, "STATUS", conf("1.0.0"), ifname="")
    assert old.rc != 0 and old.out and old.out["code"] == 1

    pod_a, cid_a, _res_a = _add(agent, netns_set, "ga")
    _pod_b, _cid_b, res_b = _add(agent, netns_set, "gb")
    valid = {"cni.dev/valid-attachments": [{"containerID": cid_a, "ifname": "eth0"}]}
    off = run_plugin(agent.plugin, "GC", conf("1.1.0", disableGC=True, **valid), ifname="")
    assert off.rc == 0 and len(agent.checkpoint["allocations"]) == 2  # GC disabled: kept
    gc = run_plugin(agent.plugin, "GC", conf("1.1.0", **valid), ifname="")
    assert gc.rc == 0, gc.stdout
    agent.settled(lambda c: {a["container_id"] for a in c["allocations"]} == {cid_a})
    # the collected pod's link and rules are gone, the kept one still works
    assert res_b["interfaces"][0]["name"] not in sh("ip", "link", ns=agent.node.ns).stdout
    sh("ping", "-c1", "-W5", agent.node.ip, ns=pod_a)


def _codes(
    agent: AgentProc, env_override: dict[str, str | None], stdin: Any = None, command: str = "ADD"
) -> int:
    call = run_plugin(
        agent.plugin,
        command,
        conf() if stdin is None else stdin,
        container_id="cid-env",
        netns="/run/netns/none",
        args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=e",
        env_override=env_override,
    )
    assert call.rc != 0, call.stdout
    assert call.out is not None, f"error JSON must be on stdout: {call.stdout!r} {call.stderr!r}"
    assert call.out["cniVersion"] and call.out["msg"]
    return int(call.out["code"])


@pytest.mark.parametrize(
    ("override", "code", "named"),
    [
        ({"CNI_COMMAND": None}, 4, "CNI_COMMAND"),
        ({"CNI_COMMAND": "FROB"}, 4, "CNI_COMMAND"),
        ({"CNI_CONTAINERID": None}, 4, "CNI_CONTAINERID"),
        ({"CNI_CONTAINERID": "-bad id"}, 4, "CNI_CONTAINERID"),
        ({"CNI_NETNS": None}, 4, "CNI_NETNS"),
        ({"CNI_NETNS": "relative/path"}, 4, "CNI_NETNS"),
        ({"CNI_IFNAME": None}, 4, "CNI_IFNAME"),
        ({"CNI_IFNAME": "a-very-long-interface-name"}, 4, "CNI_IFNAME"),
        ({"CNI_IFNAME": "eth/0"}, 4, "CNI_IFNAME"),
        ({"CNI_ARGS": "novalue"}, 4, "CNI_ARGS"),
        ({"CNI_NETNS": "/run/netns/does-not-exist"}, 3, "does-not-exist"),
    ],
)
def test_env_errors(
    node_agent: tuple[Vpc, AgentProc], override: dict[str, str | None], code: int, named: str
) -> None:
    _, agent = node_agent
    call = run_plugin(
        agent.plugin,
        "ADD",
        conf(),
        container_id="cid-env",
        netns="/run/netns/none",
        args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=e",
        env_override=override,
    )
    assert call.rc != 0 and call.out is not None, call.stdout
    assert call.out["code"] == code, call.out
    assert named in call.out["msg"], call.out
    # a failed ADD leaks nothing
    agent.settled(lambda c: c["allocations"] == [])


def test_stdin_errors(node_agent: tuple[Vpc, AgentProc]) -> None:
    _, agent = node_agent
    assert _codes(agent, {}, "{not json") == 6
    assert _codes(agent, {}, "[1, 2]") == 6
    assert _codes(agent, {}, b"\xff\xfe{}") == 6
    assert _codes(agent, {}, json.dumps(conf(pad="x" * (2 << 20)))) == 6
    assert _codes(agent, {}, conf("9.9.9")) == 1
    assert _codes(agent, {}, {"name": "n", "type": "tke-route-eni"}) == 7  # no cniVersion
    assert _codes(agent, {}, {"cniVersion": "1.0.0", "type": "tke-route-eni"}) == 7  # no name
    assert _codes(agent, {}, conf(), command="CHECK") == 7  # CHECK without prevResult
    assert _codes(agent, {}, conf("1.0.0", **{"cni.dev/valid-attachments": []}), command="GC") == 1
    agent.settled(lambda c: c["allocations"] == [])


def test_agent_unreachable(node_agent: tuple[Vpc, AgentProc], netns_set: NetnsSet) -> None:
    _, agent = node_agent
    pod, cid, result = _add(agent, netns_set, "un")
    veth = result["interfaces"][0]["name"]
    agent.kill()
    args = POD_ARGS.format(name="un", cid=cid)
    add = run_plugin(
        agent.plugin,
        "ADD",
        conf(),
        container_id="cid-other",
        netns=f"/run/netns/{pod}",
        args=args,
        caller_ns=agent.node.ns,
    )
    assert add.rc != 0 and add.out and add.out["code"] == 11, add.stdout
    assert agent.socket in add.out["msg"]
    status = run_plugin(agent.plugin, "STATUS", conf("1.1.0"), ifname="")
    assert status.out and status.out["code"] == 50
    # DEL never blocks pod deletion: best-effort clean-up from prevResult, success
    gone = run_plugin(
        agent.plugin,
        "DEL",
        conf(prevResult=result),
        container_id=cid,
        netns=f"/run/netns/{pod}",
        args=args,
        caller_ns=agent.node.ns,
        env_override={"PATH": None},  # runtimes may pass no PATH
    )
    assert gone.rc == 0, gone.stdout
    assert veth not in sh("ip", "link", ns=agent.node.ns).stdout
    assert "10.10.0.100" not in sh("ip", "rule", ns=agent.node.ns).stdout
    # the restarted agent sees the link gone and releases the IP (with cooldown)
    agent.start()
    agent.settled(lambda c: c["allocations"] == [] and "10.10.0.100" in c["cooldown"])
