"""Static IPs waiting for room (``WaitingForSubnet``: the subnet is full, or
the node has no ENI with room and cannot add one) are retried when room
appears, with no other trigger (docs/ipamd.md, "Static IPs waiting for room"):
ipamd's cluster view remembers which claims wait on which node and zone, and
an IP leaving a node, an ENI attached to or removed from it, a subnet leaving
the "full" set or a new subnet decision queue them again; the periodic pass
queues every waiting claim at each subnet refresh as a safety net."""

from __future__ import annotations

from ipamd.rules.records import EniRec, IpRec
from ipamd.state import CLAIM, ClusterState
from ipamd.workqueue import WorkQueue


def _queued(q: WorkQueue) -> set[str]:
    out = set()
    while (key := q.get(timeout=0)) is not None:
        out.add(key)
        q.done(key)
    return out


def _ip(address: str, node: str) -> IpRec:
    return IpRec(address, node, "eni-1", "subnet-1", "z1", "Assigned", "", "", "", "", "")


def _eni(eni_id: str, node: str) -> EniRec:
    return EniRec(eni_id, node, "ins-1", "subnet-1", "z1", "Attached", 10, "", "", 1)


def test_an_ip_leaving_a_node_queues_the_claims_waiting_on_that_node_only() -> None:
    q = WorkQueue()
    st = ClusterState(q)
    st.wait_for_room("ns/a", "n1", "z1")
    st.wait_for_room("ns/b", "n2", "z1")
    _queued(q)
    st.on_ip("10.0.0.5", _ip("10.0.0.5", "n1"), None)
    got = _queued(q)
    assert CLAIM + "ns/a" in got and CLAIM + "ns/b" not in got, got
    st.on_eni("eni-2", None, _eni("eni-2", "n2"))  # a new ENI on n2: room there
    got = _queued(q)
    assert CLAIM + "ns/b" in got and CLAIM + "ns/a" not in got, got
    st.on_eni("eni-2", _eni("eni-2", "n2"), None)  # an ENI gone: a slot for a new one
    assert CLAIM + "ns/b" in _queued(q)


def test_room_in_a_zone_queues_that_zones_waiting_claims_and_a_found_claim_is_forgotten() -> None:
    q = WorkQueue()
    st = ClusterState(q)
    st.wait_for_room("ns/a", "n1", "z1")
    st.wait_for_room("ns/b", "n2", "z2")
    assert st.room_appeared(zone="z2") == 1
    assert _queued(q) == {CLAIM + "ns/b"}
    assert st.room_appeared() == 2  # anywhere (a new subnet decision, the periodic retry)
    assert _queued(q) == {CLAIM + "ns/a", CLAIM + "ns/b"}
    st.room_found("ns/a")
    assert st.waiting_claims() == {"ns/b": ("n2", "z2")}
    assert st.room_appeared() == 1
