"""ADD answers only once its reservation is on disk: a reply sent before the
checkpoint write would let a crash right after it forget an IP a running
pod uses (and hand it out again). The agent's real ADD path and real
checkpoint writer; the writer is held back, the netlink side is a stand-in."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from cni.agent import checkpoint
from cni.agent.agent import Agent, AgentSettings
from cni.agent.cnitypes import PodAttachment, parse_request
from cni.agent.dataplane.netops import EniLink
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp
from cni.agent.pool import Allocation, PoolState
from core.ids import EniId, IPv4


class StandInNet:
    """The data plane's surface ADD uses; records that plumbing happened."""

    def __init__(self) -> None:
        self.fault: Any = None
        self.plumbed = threading.Event()

    def add_pod(self, alloc: Allocation, table: int) -> PodAttachment:
        self.plumbed.set()
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


def test_add_replies_only_after_the_checkpoint_is_on_disk(tmp_path: Path) -> None:
    source = MemoryNodeIpSource()
    eni = EniInfo(
        EniId("eni-1"), "02:00:00:00:aa:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
    )
    source.set_view([eni], [NodeIp(IPv4("10.0.0.10"), EniId("eni-1"))])
    net = StandInNet()
    path = tmp_path / "checkpoint.json"
    agent = Agent(
        AgentSettings(eni_only=True),
        source=source,
        pods=None,
        netops=net,  # type: ignore[arg-type]
        state=PoolState(),
        checkpoint_path=str(path),
    )
    agent.eni_links["eni-1"] = EniLink("eni-1", "eth1", 3, 2003)
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"})
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/p",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
    }
    req = parse_request(env, conf)
    result: dict[str, Any] = {}
    agent.checkpoint._write_lock.acquire()  # the disk is slow: the write cannot finish yet
    try:
        worker = threading.Thread(target=lambda: result.update(reply=agent.add(req)))
        worker.start()
        assert net.plumbed.wait(30), "ADD never plumbed the pod"
        worker.join(1.0)  # time for a premature reply to show; correct code cannot reply
        assert worker.is_alive() and not result, f"ADD replied before its checkpoint: {result}"
    finally:
        agent.checkpoint._write_lock.release()
    worker.join(30)
    assert result["reply"]["ips"][0]["address"] == "10.0.0.10/32"
    assert "10.0.0.10" in checkpoint.load(str(path)).allocations  # on disk when it replied
