"""Pure rules of the agent's IP bookkeeping (table-driven)."""

from __future__ import annotations

import pytest

from cni.agent import pool
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView
from cni.agent.pool import Allocation, PoolState
from core.ids import EniId, IPv4

ENIS = (
    EniInfo(EniId("eni-a"), "02:00:00:00:00:0a", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")),
    EniInfo(EniId("eni-b"), "02:00:00:00:00:0b", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.3")),
)


def ip(
    addr: str, eni: str = "eni-a", state: str = "Assigned", claim: str = "", uid: str = ""
) -> NodeIp:
    return NodeIp(IPv4(addr), EniId(eni), state, claim, uid)


def alloc(addr: str, eni: str = "eni-a", cid: str = "c", claim: str = "") -> Allocation:
    return Allocation(addr, eni, cid, "eth0", "/run/netns/x", "tkex", claim=claim)


def view(*ips: NodeIp) -> NodeIpView:
    return NodeIpView(ENIS, ips, 1)


def test_dynamic_packs_onto_busiest_eni_then_lowest_ip() -> None:
    v = view(ip("10.0.0.20"), ip("10.0.0.9", "eni-b"), ip("10.0.0.10", "eni-b"), ip("10.0.0.100"))
    state = PoolState(allocations={"10.0.0.9": alloc("10.0.0.9", "eni-b")})
    assert pool.choose_dynamic(v, state, 0).ip == "10.0.0.10"  # type: ignore[union-attr]
    assert pool.choose_dynamic(v, PoolState(), 0).ip == "10.0.0.20"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("candidate", "state", "offered"),
    [
        (ip("10.0.0.5"), PoolState(), True),
        (ip("10.0.0.5", state="Releasing"), PoolState(), False),
        (ip("10.0.0.5", claim="ns/web-0"), PoolState(), False),  # static IPs never go to others
        (ip("10.0.0.5", eni="eni-unknown"), PoolState(), False),  # ENI not configured here
        (ip("10.0.0.5"), PoolState(cooldown={"10.0.0.5": 100.0}), False),  # still cooling at t=50
        (ip("10.0.0.5"), PoolState(cooldown={"10.0.0.5": 10.0}), True),  # cooled down
        (ip("10.0.0.5"), PoolState(released={"10.0.0.5"}), False),  # granted back to ipamd
        (ip("10.0.0.5"), PoolState(allocations={"10.0.0.5": alloc("10.0.0.5")}), False),
    ],
)
def test_dynamic_offer_rules(candidate: NodeIp, state: PoolState, offered: bool) -> None:
    assert (pool.choose_dynamic(view(candidate), state, 50.0) is not None) == offered


def test_static_claim_and_uid() -> None:
    v = view(ip("10.0.0.7", claim="ns/web-0", uid="u1"), ip("10.0.0.8"))
    chosen, holder = pool.choose_static(v, PoolState(), "ns/web-0", "u1")
    assert chosen is not None and chosen.ip == "10.0.0.7" and holder is None
    assert pool.choose_static(v, PoolState(), "ns/web-0", "u2") == (None, None)  # other pod UID
    assert pool.choose_static(v, PoolState(), "ns/web-1", "u1") == (None, None)  # other claim
    # an earlier sandbox of the same pod holds it: taken over; a foreign holder never
    old = alloc("10.0.0.7", cid="old", claim="ns/web-0")
    chosen, holder = pool.choose_static(
        v, PoolState(allocations={"10.0.0.7": old}), "ns/web-0", "u1"
    )
    assert holder is old
    foreign = alloc("10.0.0.7", cid="x")
    assert pool.choose_static(
        v, PoolState(allocations={"10.0.0.7": foreign}), "ns/web-0", "u1"
    ) == (None, None)


def test_release_cooldown_dynamic_only() -> None:
    state = PoolState(
        allocations={"10.0.0.5": alloc("10.0.0.5"), "10.0.0.7": alloc("10.0.0.7", claim="ns/w")}
    )
    pool.release(state, "10.0.0.5", 1000.0, 150.0)
    pool.release(state, "10.0.0.7", 1000.0, 150.0)
    assert state.allocations == {}
    assert state.cooldown == {"10.0.0.5": 1150.0}
    assert pool.release(state, "10.0.0.5", 1000.0, 150.0) is None  # idempotent


def test_release_handshake() -> None:
    v = view(
        ip("10.0.0.5", state="Releasing"),
        ip("10.0.0.6", state="Releasing"),
        ip("10.0.0.8", state="Releasing"),
    )
    state = PoolState(allocations={"10.0.0.6": alloc("10.0.0.6")}, cooldown={"10.0.0.8": 200.0})
    assert pool.grant_releases(v, state, 100.0)
    assert state.released == {"10.0.0.5"}  # not the used one, not the cooling one
    assert not pool.grant_releases(v, state, 100.0)
    assert pool.grant_releases(v, state, 300.0)  # cooldown over: granted, cooldown dropped
    assert state.released == {"10.0.0.5", "10.0.0.8"} and state.cooldown == {}
    # ipamd changed its mind: offered again; ipamd took it: forgotten
    back = view(ip("10.0.0.5"), ip("10.0.0.6", state="Releasing"))
    assert pool.grant_releases(back, state, 300.0)
    assert state.released == set()


def test_usage_phases() -> None:
    v = view(ip("10.0.0.5"), ip("10.0.0.6"), ip("10.0.0.7"), ip("10.0.0.8"))
    a = Allocation("10.0.0.6", "eni-a", "cid", "eth0", "/n", "tkex", "ns", "pod", "uid")
    state = PoolState(
        allocations={"10.0.0.6": a}, cooldown={"10.0.0.7": 500.0}, released={"10.0.0.8"}
    )
    phases = {u.ip: u for u in pool.usage(v, state, 100.0)}
    assert {k: u.phase for k, u in phases.items()} == {
        "10.0.0.5": "Free",
        "10.0.0.6": "InUse",
        "10.0.0.7": "Cooldown",
        "10.0.0.8": "Released",
    }
    assert (phases["10.0.0.6"].pod_name, phases["10.0.0.6"].pod_uid) == ("pod", "uid")
    c = pool.counts(v, state, 100.0)
    assert (c.total, c.in_use, c.cooldown, c.free, c.released) == (4, 1, 1, 1, 1)


def test_state_roundtrip() -> None:
    state = PoolState(
        allocations={"10.0.0.6": alloc("10.0.0.6")},
        cooldown={"10.0.0.7": 5.0},
        released={"10.0.0.8"},
    )
    again = PoolState.from_dict(state.to_dict())
    assert again == state
    with pytest.raises(ValueError, match="version"):
        PoolState.from_dict({"version": 7})


def test_host_veth_name_deterministic() -> None:
    a = pool.host_veth_name("tke", "ns", "web-0", "c1")
    assert a == pool.host_veth_name("tke", "ns", "web-0", "c2")  # same pod, new sandbox
    assert a != pool.host_veth_name("tke", "ns", "web-1", "c1")
    assert len(a) == 15 and a.startswith("tke")
    assert pool.host_veth_name("tke", "", "", "c1") != pool.host_veth_name("tke", "", "", "c2")
    assert pool.host_veth_name("tke", "ns", "web-0", "c1", "net1") != a  # a second interface
