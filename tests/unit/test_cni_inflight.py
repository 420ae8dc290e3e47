"""The in-flight mark of an ADD shields its IP from the reconcile loop for
exactly as long as some ADD of that IP is running: a retried ADD that runs
while the first one finishes keeps it marked, and every ADD, failed or not,
takes its mark away. The agent's real ADD path, a stand-in data plane."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from cni.agent.agent import Agent, AgentSettings
from cni.agent.cnitypes import CniError, PodAttachment, parse_request
from cni.agent.dataplane.netops import EniLink
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp
from cni.agent.pool import Allocation, PoolState
from core.ids import EniId, IPv4


class GatedNet:
    """add_pod waits for its gate; ``fail`` makes the next one raise."""

    def __init__(self) -> None:
        self.fault: Any = None
        self.entered = threading.Semaphore(0)
        self.gates: list[threading.Event] = []
        self.fail = False

    def add_pod(self, alloc: Allocation, table: int) -> PodAttachment:
        gate = threading.Event()
        self.gates.append(gate)
        self.entered.release()
        assert gate.wait(30)
        if self.fail:
            raise NetlinkError(16, "busy")
        return PodAttachment(
            alloc.ip,
            alloc.host_veth,
            "02:00:00:00:00:01",
            alloc.ifname,
            "02:00:00:00:00:02",
            alloc.netns,
            1500,
        )

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        return None


def make_agent(tmp_path: Path, net: GatedNet) -> Agent:
    source = MemoryNodeIpSource()
    eni = EniInfo(
        EniId("eni-1"), "02:00:00:00:aa:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
    )
    source.set_view([eni], [NodeIp(IPv4("10.0.0.10"), EniId("eni-1"))])
    agent = Agent(
        AgentSettings(eni_only=True),
        source=source,
        pods=None,
        netops=net,  # type: ignore[arg-type]
        state=PoolState(),
        checkpoint_path=str(tmp_path / "cp.json"),
    )
    agent.eni_links["eni-1"] = EniLink("eni-1", "eth1", 3, 2003)
    return agent


REQ = parse_request(
    {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/p",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
    },
    json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"}),
)


def run(agent: Agent, out: list[Any]) -> threading.Thread:
    def go() -> None:
        try:
            out.append(agent.add(REQ))
        except (CniError, NetlinkError) as exc:
            out.append(exc)

    t = threading.Thread(target=go)
    t.start()
    return t


def test_retried_add_keeps_the_mark_while_it_runs(tmp_path: Path) -> None:
    net = GatedNet()
    agent = make_agent(tmp_path, net)
    first: list[Any] = []
    second: list[Any] = []
    t1 = run(agent, first)
    assert net.entered.acquire(timeout=30)
    t2 = run(agent, second)  # the runtime retried while the first is still plumbing
    assert net.entered.acquire(timeout=30)
    net.gates[0].set()
    t1.join(30)
    assert first and not isinstance(first[0], Exception), first
    assert "10.0.0.10" in agent.in_flight, "the retried ADD runs, yet its IP lost its mark"
    net.gates[1].set()
    t2.join(30)
    assert second and not isinstance(second[0], Exception), second
    assert "10.0.0.10" not in agent.in_flight


def test_failed_add_takes_its_mark_away(tmp_path: Path) -> None:
    net = GatedNet()
    net.fail = True
    agent = make_agent(tmp_path, net)
    out: list[Any] = []
    t = run(agent, out)
    assert net.entered.acquire(timeout=30)
    net.gates[0].set()
    t.join(30)
    assert out and isinstance(out[0], NetlinkError), out
    assert not agent.in_flight and not agent.state.allocations
