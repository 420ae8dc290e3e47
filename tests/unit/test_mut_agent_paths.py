"""The agent's pool rules and DEL path, pinned where the mutation run
(docs/mutation.md) found them unguarded.

* a static IP is handed to its claim's new sandbox only while ipamd keeps it
  Assigned on an ENI this node has: one asked back (Releasing, a move under
  way) or on an ENI the node does not know is not;
* a freed dynamic IP cools down for the configured time (also for less than
  a second), and no cooldown entry is made when the cooldown is off; a
  cooldown ends exactly at its time;
* the release handshake reports a change when a request is taken back;
* DEL frees the container's IP at once (no reconcile pass needed), leaves the
  veth to die with the netns, and a DEL of a container the agent does not
  know goes to the configured delegate chain unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cni.agent.agent as agent_mod
from cni.agent import delegate
from cni.agent.agent import Agent, AgentSettings
from cni.agent.cnitypes import CniRequest, PodAttachment
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp, NodeIpView
from cni.agent.netops import EniLink
from cni.agent.pool import (
    Allocation,
    PoolState,
    choose_static,
    cooling,
    grant_releases,
    release,
)
from core.ids import EniId, IPv4
from core.models import IP_STATE_ASSIGNED, IP_STATE_RELEASING

ENI = EniInfo(
    EniId("eni-1"), "02:00:00:00:aa:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)
CLAIM = "default/web-0"


def nip(ip: str, state: str = IP_STATE_ASSIGNED, eni: str = "eni-1", **kw: Any) -> NodeIp:
    return NodeIp(IPv4(ip), EniId(eni), state, **kw)


def view(*ips: NodeIp) -> NodeIpView:
    return NodeIpView((ENI,), tuple(ips), 1)


def alloc(ip: str, claim: str = "", container: str = "c1") -> Allocation:
    return Allocation(ip, "eni-1", container, "eth0", "/run/netns/p", "tkeveth1", claim=claim)


# --- pool: static IPs ---------------------------------------------------------------


def test_static_ip_not_handed_out_while_ipamd_asks_it_back() -> None:
    v = view(nip("10.0.0.10", IP_STATE_RELEASING, claim=CLAIM, release_id="r1"))
    assert choose_static(v, PoolState(), CLAIM, "uid-1") == (None, None)


def test_static_ip_not_handed_out_on_an_eni_the_node_does_not_have() -> None:
    v = view(nip("10.0.0.10", eni="eni-elsewhere", claim=CLAIM))
    assert choose_static(v, PoolState(), CLAIM, "uid-1") == (None, None)


def test_static_ip_found_after_other_ips_of_the_node() -> None:
    v = view(
        nip("10.0.0.9"), nip("10.0.0.11", claim="default/web-1"), nip("10.0.0.12", claim=CLAIM)
    )
    got, holder = choose_static(v, PoolState(), CLAIM, "uid-1")
    assert got is not None and got.ip == "10.0.0.12" and holder is None


# --- pool: cooldown ---------------------------------------------------------------------


def test_release_cools_a_dynamic_ip_down_for_the_configured_time() -> None:
    st = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10")})
    assert release(st, "10.0.0.10", 100.0, 0.5) is not None
    assert st.cooldown == {"10.0.0.10": 100.5}
    assert cooling(st, "10.0.0.10", 100.25)


def test_release_without_cooldown_makes_no_entry() -> None:
    st = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10")})
    release(st, "10.0.0.10", 100.0, 0.0)
    assert st.cooldown == {} and st.allocations == {}


def test_cooldown_ends_exactly_at_its_time() -> None:
    st = PoolState(cooldown={"10.0.0.10": 100.0, "10.0.0.11": 100.5})
    assert grant_releases(view(nip("10.0.0.10"), nip("10.0.0.11")), st, 100.0) is True
    assert st.cooldown == {"10.0.0.11": 100.5}
    assert grant_releases(view(nip("10.0.0.10"), nip("10.0.0.11")), st, 100.0) is False


def test_a_request_taken_back_is_a_change() -> None:
    st = PoolState(released={"10.0.0.10"})
    assert grant_releases(view(nip("10.0.0.10")), st, 0.0) is True  # back to Assigned
    assert st.released == set()
    assert grant_releases(view(nip("10.0.0.10")), st, 0.0) is False


# --- agent: DEL -------------------------------------------------------------------------


class Net:
    def __init__(self) -> None:
        self.deleted: list[tuple[str, str, bool]] = []

    def add_pod(self, a: Allocation, table: int) -> PodAttachment:
        return PodAttachment(a.ip, a.host_veth, "02:00:00:00:00:01", a.ifname, "", a.netns, 1500)

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        self.deleted.append((ip, host_veth, delete_link))


def req(command: str, container: str, conf: dict[str, Any] | None = None) -> CniRequest:
    return CniRequest(
        command=command,
        container_id=container,
        netns=f"/run/netns/{container}",
        ifname="eth0",
        args={"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "p", "K8S_POD_UID": "u1"},
        path="/opt/cni/bin",
        conf=conf or {"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"},
    )


@pytest.fixture
def agent(tmp_path: Path) -> tuple[Agent, Net]:
    source = MemoryNodeIpSource()
    source.set_view([ENI], [NodeIp(IPv4("10.0.0.10"), EniId("eni-1"))])
    net = Net()
    a = Agent(
        AgentSettings(eni_only=True, cooldown=30.0),
        source=source,
        pods=None,
        netops=net,  # type: ignore[arg-type]
        state=PoolState(),
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    a.eni_links["eni-1"] = EniLink("eni-1", "eth1", 3, 2003)
    a.ready.set()
    return a, net


def test_del_frees_the_ip_at_once_and_leaves_the_veth_to_the_netns(
    agent: tuple[Agent, Net],
) -> None:
    a, net = agent
    result = a.handle(req("ADD", "c1"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"
    veth = a.state.allocations["10.0.0.10"].host_veth
    a.handle(req("DEL", "c1"))
    assert a.state.allocations == {}
    assert net.deleted == [("10.0.0.10", veth, False)]
    assert cooling(a.state, "10.0.0.10", 0.0)  # a dynamic IP cools down
    a.handle(req("DEL", "c1"))  # a repeated DEL is a no-op
    assert len(net.deleted) == 1


def test_del_of_an_unknown_container_goes_to_the_delegates(
    agent: tuple[Agent, Net], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, net = agent
    ran: list[tuple[CniRequest, Any]] = []
    monkeypatch.setattr(agent_mod.delegate, "run", lambda r, d: ran.append((r, d)))
    chain = [{"type": "other-ipam"}]
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "tke-route-eni",
        delegate.DELEGATE_KEY: chain,
    }
    r = req("DEL", "unknown", conf)
    a.handle(r)
    assert ran == [(r, chain)] and net.deleted == []
    a.handle(req("DEL", "unknown"))  # no delegates configured: nothing to do
    assert len(ran) == 1
