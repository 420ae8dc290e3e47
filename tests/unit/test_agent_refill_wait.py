"""A burst never fails a sandbox (issue 15): an ADD that finds no free IP
waits, bounded by ``--refill-wait``, for ipamd's refill (or a cooldown's
end) instead of failing at once; past the bound it answers code 11 as
before. And the cooldown floor through the agent: a cooling IP past the
floor is given when nothing else is free, counted in a metric."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cni.agent.agent import Agent, AgentSettings
from cni.agent.cnitypes import ERR_TRY_AGAIN, CniError, CniRequest, PodAttachment
from cni.agent.dataplane.netops import EniLink
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp
from cni.agent.pool import Allocation, PoolState
from core.ids import EniId, IPv4

ENI = EniInfo(
    EniId("eni-1"), "02:00:00:00:00:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)


class Net:
    """The data plane's surface the agent uses, doing nothing."""

    def links_by_mac(self) -> dict[str, Any]:
        return {}

    def ensure_eni(self, eni: EniInfo, links: Any) -> tuple[EniLink | None, list[str]]:
        return EniLink(str(eni.eni_id), "eth1", 3, 2003), []

    def add_pod(self, a: Allocation, table: int) -> PodAttachment:
        return PodAttachment(a.ip, a.host_veth, "02:00:00:00:00:01", a.ifname, "", a.netns, 1500)

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        return None


def req(command: str, container: str) -> CniRequest:
    return CniRequest(
        command=command,
        container_id=container,
        netns=f"/run/netns/{container}",
        ifname="eth0",
        args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": container, "K8S_POD_UID": container},
        path="/opt/cni/bin",
        conf={"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"},
    )


def nip(last: int) -> NodeIp:
    return NodeIp(IPv4(f"10.0.0.{last}"), ENI.eni_id)


def make(tmp_path: Path, refill_wait: float, state: PoolState | None = None) -> Agent:
    source = MemoryNodeIpSource()
    source.set_view([ENI], [nip(10)])
    a = Agent(
        AgentSettings(eni_only=True, cooldown=150.0, refill_wait=refill_wait),
        source=source,
        pods=None,
        netops=Net(),  # type: ignore[arg-type]
        state=state or PoolState(),
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    a.ready.set()
    return a


def sample(a: Agent, name: str, **labels: str) -> float:
    return a.metrics.registry.get_sample_value(f"tke_eni_agent_{name}", labels) or 0.0


def test_add_waits_for_the_refill_instead_of_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = make(tmp_path, refill_wait=30.0)
    a.handle(req("ADD", "p1"))  # the warm pool's only IP
    source = a.source
    assert isinstance(source, MemoryNodeIpSource)

    def refill() -> None:  # ipamd assigns one more IP a moment later
        time.sleep(0.3)
        source.set_view([ENI], [nip(10), nip(11)])

    t = threading.Thread(target=refill)
    t.start()
    with caplog.at_level(logging.INFO, logger="cni.agent.agent"):
        result = a.handle(req("ADD", "p2"))
    t.join()
    assert result is not None and result["ips"][0]["address"] == "10.0.0.11/32"
    assert sample(a, "refill_waits_total", outcome="waited") == 1
    assert sample(a, "refill_waits_total", outcome="timeout") == 0
    assert any(
        "no free IP on this node (1 in use, 0 cooling down, 1 total): waiting up to 30s "
        "for ipamd's refill or a cooldown" in r.getMessage()
        for r in caplog.records
    )


def test_past_the_bound_add_fails_with_code_11(tmp_path: Path) -> None:
    a = make(tmp_path, refill_wait=0.2)
    a.handle(req("ADD", "p1"))
    with pytest.raises(CniError) as err:
        a.handle(req("ADD", "p2"))
    assert err.value.code == ERR_TRY_AGAIN
    assert err.value.msg == (
        "no free IP on this node (1 in use, 0 cooling down, 1 total) after waiting for "
        "ipamd's refill or a cooldown"
    )
    assert sample(a, "refill_waits_total", outcome="timeout") == 1


def test_no_wait_fails_at_once(tmp_path: Path) -> None:
    a = make(tmp_path, refill_wait=0.0)
    a.handle(req("ADD", "p1"))
    with pytest.raises(CniError, match=r"no free IP on this node \(1 in use"):
        a.handle(req("ADD", "p2"))
    assert sample(a, "refill_waits_total", outcome="waited") == 0


def test_a_cooling_ip_past_the_floor_is_reused_when_nothing_else_is_free(tmp_path: Path) -> None:
    state = PoolState(early_reuse=120.0)  # --cooldown 150, --cooldown-floor 30
    a = make(tmp_path, refill_wait=0.0, state=state)
    a.handle(req("ADD", "p1"))
    a.handle(req("DEL", "p1"))  # cools down for 150 s
    with pytest.raises(CniError):  # rested 0 s: not yet
        a.handle(req("ADD", "p2"))
    state.cooldown["10.0.0.10"] = time.time() + 100  # as if it had rested 50 s
    result = a.handle(req("ADD", "p3"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"
    assert sample(a, "cooldown_floor_reuses_total") == 1


class LateLinkNet(Net):
    """The ENI ipamd just attached gets its link on the node a moment later."""

    def __init__(self, misses: int) -> None:
        self.misses = misses

    def ensure_eni(self, eni: EniInfo, links: Any) -> tuple[EniLink | None, list[str]]:
        if self.misses > 0:
            self.misses -= 1
            return None, [f"eni {eni.eni_id}: no link with mac {eni.mac}"]
        return super().ensure_eni(eni, links)


def test_add_waits_for_a_new_enis_link_instead_of_failing(tmp_path: Path) -> None:
    a = make(tmp_path, refill_wait=30.0)
    a.net = LateLinkNet(misses=3)  # type: ignore[assignment]
    result = a.handle(req("ADD", "p1"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"


def test_a_link_that_never_comes_fails_past_the_bound(tmp_path: Path) -> None:
    a = make(tmp_path, refill_wait=0.5)
    a.net = LateLinkNet(misses=10_000)  # type: ignore[assignment]
    with pytest.raises(CniError, match=r"has no link on this node yet") as err:
        a.handle(req("ADD", "p1"))
    assert err.value.code == ERR_TRY_AGAIN
    assert a.state.allocations == {}  # the IP went back (no cooldown: it served no pod)


def test_add_waits_past_the_bound_for_an_ip_about_to_pass_its_floor(tmp_path: Path) -> None:
    """The scheduler counted on an IP another pod took a moment earlier (the
    node's allocatable lags by the kubelet's status loop): a cooling IP whose
    floor passes within twice the bound is waited for."""
    state = PoolState(early_reuse=120.0)  # --cooldown 150, --cooldown-floor 30
    a = make(tmp_path, refill_wait=0.5, state=state)
    a.handle(req("ADD", "p1"))
    a.handle(req("DEL", "p1"))
    state.cooldown["10.0.0.10"] = time.time() + 120.8  # its floor passes in 0.8 s
    result = a.handle(req("ADD", "p2"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"
    assert sample(a, "cooldown_floor_reuses_total") == 1


def test_two_waiters_get_the_ips_whose_floors_pass_one_after_the_other(tmp_path: Path) -> None:
    """Two pods placed for one IP (the allocatable lag): the second keeps waiting
    while the next floor is near, within three times the bound in all."""
    state = PoolState(early_reuse=120.0)
    a = make(tmp_path, refill_wait=1.0, state=state)
    source = a.source
    assert isinstance(source, MemoryNodeIpSource)
    source.set_view([ENI], [nip(10), nip(11)])
    now = time.time()
    state.cooldown["10.0.0.10"] = now + 121.5  # its floor passes in 1.5 s
    state.cooldown["10.0.0.11"] = now + 122.8  # and this one's in 2.8 s
    got: dict[str, str] = {}

    def add(name: str) -> None:
        result = a.handle(req("ADD", name))
        got[name] = result["ips"][0]["address"] if result else ""

    threads = [threading.Thread(target=add, args=(n,)) for n in ("p1", "p2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got.values()) == ["10.0.0.10/32", "10.0.0.11/32"], got
