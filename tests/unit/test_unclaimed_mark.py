"""The durable "claim deleted while the pod ran" mark (core.models,
``VpcIP.spec.unclaimedPodUid``): how ipamd's records and the agent's view read
it, and the agent's pool rules over it (pure)."""

from __future__ import annotations

from cni.agent import pool
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView, view_from_json
from cni.agent.pool import Allocation, PoolState
from cni.agent.sources.kube_ipsource import ip_of
from core import models as m
from core.ids import EniId, IPv4
from ipamd.rules.records import ip_from_obj

ENI = EniInfo(
    EniId("eni-a"), "02:00:00:00:00:0a", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)


def node_ip(addr: str, *, uid: str = "", claim: str = "", state: str = "Assigned") -> NodeIp:
    return NodeIp(IPv4(addr), EniId("eni-a"), state, claim, unclaimed_pod_uid=uid)


def alloc(addr: str, *, uid: str, veth: str = "tkeaaaa", claim: str = "") -> Allocation:
    return Allocation(
        addr, "eni-a", f"c-{uid}", "eth0", "/run/netns/x", veth, pod_uid=uid, claim=claim
    )


def vpcip(spec: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": "10.0.0.9"}, "spec": {"eniId": "eni-a", "nodeName": "n1", **spec}}


def test_the_mark_counts_only_on_a_record_without_a_claim() -> None:
    assert m.unclaimed_uid("", "u1") == "u1"
    assert m.unclaimed_uid("default/web-0", "u1") == ""  # given to a claim again: the claim's
    assert ip_from_obj(vpcip({"unclaimedPodUid": "u1"})).unclaimed_uid == "u1"
    assert ip_from_obj(vpcip({"unclaimedPodUid": "u1", "claim": "ns/a"})).unclaimed_uid == ""
    assert ip_of(vpcip({"unclaimedPodUid": "u1"})).unclaimed_pod_uid == "u1"
    assert ip_of(vpcip({"unclaimedPodUid": "u1", "claim": "ns/a"})).unclaimed_pod_uid == ""
    spec = m.VpcIpSpec.from_dict({"unclaimedPodUid": "u1"})
    assert spec.unclaimed_pod_uid == "u1" and spec.to_dict()["unclaimedPodUid"] == "u1"


def test_file_view_reads_the_mark() -> None:
    data = {
        "enis": [{"id": "eni-a", "mac": "02:00:00:00:00:0a", "gateway": "10.0.0.1"}],
        "ips": [{"ip": "10.0.0.9", "eni": "eni-a", "unclaimedPodUid": "u1"}],
    }
    assert view_from_json(data, 1).ips[0].unclaimed_pod_uid == "u1"


def test_unclaimed_by_the_mark_or_an_earlier_claimless_sandbox() -> None:
    v = NodeIpView((ENI,), (node_ip("10.0.0.9", uid="u1"), node_ip("10.0.0.10")), 1)
    assert pool.unclaimed(v, PoolState(), "u1")
    assert not pool.unclaimed(v, PoolState(), "u2")
    assert not pool.unclaimed(v, PoolState(), "")
    bare = NodeIpView((ENI,), (node_ip("10.0.0.10"),), 1)
    running = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10", uid="u2")})
    assert pool.unclaimed(bare, running, "u2")
    static = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10", uid="u2", claim="ns/a")})
    assert not pool.unclaimed(bare, static, "u2")


def test_choose_unclaimed_gives_the_kept_address() -> None:
    v = NodeIpView((ENI,), (node_ip("10.0.0.5"), node_ip("10.0.0.9", uid="u1")), 1)
    # free (even cooling down: the cooldown is for other pods)
    state = PoolState(cooldown={"10.0.0.9": 1e12})
    chosen, holder = pool.choose_unclaimed(v, state, "u1", "tkeaaaa", 0)
    assert chosen is not None and chosen.ip == "10.0.0.9" and holder is None
    # held by an earlier sandbox of the same pod: taken over
    earlier = alloc("10.0.0.9", uid="u1")
    chosen, holder = pool.choose_unclaimed(
        v, PoolState(allocations={"10.0.0.9": earlier}), "u1", "tkeaaaa", 0
    )
    assert chosen is not None and chosen.ip == "10.0.0.9" and holder is earlier


def test_choose_unclaimed_never_takes_another_pods_address() -> None:
    v = NodeIpView((ENI,), (node_ip("10.0.0.5"), node_ip("10.0.0.9", uid="u1")), 1)
    other = PoolState(allocations={"10.0.0.9": alloc("10.0.0.9", uid="u7", veth="tkebbbb")})
    chosen, holder = pool.choose_unclaimed(v, other, "u1", "tkeaaaa", 0)
    assert chosen is not None and chosen.ip == "10.0.0.5" and holder is None  # a warm one
    # granted back to ipamd, or asked back: not offered
    chosen, _ = pool.choose_unclaimed(v, PoolState(released={"10.0.0.9"}), "u1", "tkeaaaa", 0)
    assert chosen is not None and chosen.ip == "10.0.0.5"
    releasing = NodeIpView((ENI,), (node_ip("10.0.0.9", uid="u1", state="Releasing"),), 1)
    assert pool.choose_unclaimed(releasing, PoolState(), "u1", "tkeaaaa", 0) == (None, None)
