"""Pods bound to a node with no ENI IP yet take that node's headroom (issue 15):
the store's count per node (``Snapshot.node_awaiting``) and the filter that
subtracts it."""

from __future__ import annotations

from typing import Any

from core.models import IP_PHASE_COOLDOWN, IP_PHASE_IN_USE
from localcluster import objects as ex
from scheduler_extender import decide
from scheduler_extender.pod import bound_pod, pod_facts
from scheduler_extender.store import (
    ADDED,
    DELETED,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_PODS,
    KIND_VPCIPS,
    KINDS,
    MODIFIED,
    Store,
)
from scheduler_extender.watch import BOUND_PENDING, resources

GZ3 = "ap-guangzhou-3"


def store() -> Store:
    s = Store()
    for kind in KINDS:
        s.replace(kind, [])
        s.watch_up(kind)
    return s


def bound(name: str, node: str, eni_ip: int | None = 1, *, phase: str = "Pending",
          static: bool = False, deleting: bool = False) -> dict[str, Any]:
    pod = ex.pod(name, eni_ip=eni_ip, static=static)
    pod["spec"]["nodeName"] = node
    pod["status"] = {"phase": phase}
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return pod


def ip_of(ip: str, node: str, pod_uid: str = "", phase: str = IP_PHASE_IN_USE,
          claim: str = "") -> dict[str, Any]:
    obj = ex.vpc_ip(ip, node, phase=phase, claim=claim)
    if pod_uid:
        obj["status"]["podUid"] = pod_uid
    return obj


def uid(name: str) -> str:
    return f"uid-default-{name}"


def test_which_pods_count() -> None:
    assert bound_pod(bound("a", "n1")) is not None
    assert bound_pod(bound("a", "n1", eni_ip=2)).need == 2  # type: ignore[union-attr]
    assert bound_pod(bound("a", "")) is None  # not bound
    assert bound_pod(bound("a", "n1", phase="Running")) is None
    assert bound_pod(bound("a", "n1", eni_ip=None)) is None  # no eni-ip
    assert bound_pod(bound("a", "n1", deleting=True)) is None
    broken = bound("a", "n1")
    broken["spec"]["containers"] = "nonsense"
    assert bound_pod(broken) is None
    assert bound_pod({"metadata": 3}) is None


def test_the_pods_watch_asks_for_bound_pending_pods_only() -> None:
    (pods,) = [r for r in resources("kube-system", ("a", "b")) if r.kind == KIND_PODS]
    assert pods.path == "/api/v1/pods"
    assert pods.params == (("fieldSelector", BOUND_PENDING),)
    assert BOUND_PENDING == "spec.nodeName!=,status.phase=Pending"


def test_a_bound_pod_counts_until_its_ip_is_in_use_then_once() -> None:
    s = store()
    s.apply(KIND_PODS, ADDED, bound("a", "n1"))
    s.apply(KIND_PODS, ADDED, bound("b", "n1", eni_ip=2))
    s.apply(KIND_PODS, ADDED, bound("c", "n2"))
    first = s.snapshot()
    assert first.node_awaiting == {"n1": 3, "n2": 1}
    s.apply(KIND_VPCIPS, ADDED, ip_of("10.0.0.1", "n1", uid("a")))
    assert s.snapshot().node_awaiting == {"n1": 2, "n2": 1}
    assert first.node_awaiting == {"n1": 3, "n2": 1}  # snapshots are not changed later
    # b got one of its two: it owes one more (the other is occupied, in use)
    s.apply(KIND_VPCIPS, ADDED, ip_of("10.0.0.2", "n1", uid("b")))
    assert s.snapshot().node_awaiting == {"n1": 1, "n2": 1}
    # a's IP cools down (its sandbox went away) while a is still Pending: counted again
    s.apply(KIND_VPCIPS, MODIFIED, ip_of("10.0.0.1", "n1", uid("a"), phase=IP_PHASE_COOLDOWN))
    assert s.snapshot().node_awaiting == {"n1": 2, "n2": 1}
    # running pods leave the watch's selection (DELETED); a finished one too
    s.apply(KIND_PODS, DELETED, bound("a", "n1"))
    s.apply(KIND_PODS, MODIFIED, bound("c", "n2", phase="Running"))
    assert s.snapshot().node_awaiting == {"n1": 1}
    s.apply(KIND_PODS, MODIFIED, bound("b", "n1", deleting=True))
    assert s.snapshot().node_awaiting == {}
    assert s.kind_states()[KIND_PODS].objects == 0


def test_the_ip_may_come_before_the_pod() -> None:
    s = store()
    s.apply(KIND_VPCIPS, ADDED, ip_of("10.0.0.1", "n1", uid("a")))
    s.apply(KIND_PODS, ADDED, bound("a", "n1"))
    assert s.snapshot().node_awaiting == {}
    s.apply(KIND_VPCIPS, DELETED, ip_of("10.0.0.1", "n1", uid("a")))
    assert s.snapshot().node_awaiting == {"n1": 1}


def test_a_static_pod_whose_claimed_ip_is_reserved_on_its_node_is_not_counted_twice() -> None:
    s = store()
    s.apply(KIND_PODS, ADDED, bound("db-0", "n1", static=True))
    assert s.snapshot().node_awaiting == {"n1": 1}  # its claim holds no IP here yet
    reserved = ip_of("10.0.0.5", "n1", phase="Free", claim="default/db-0")
    s.apply(KIND_VPCIPS, ADDED, reserved)
    assert s.snapshot().node_awaiting == {}  # the reserved IP is occupied already
    # ipamd moves the claimed IP to n2: db-0 on n1 needs a new slot there again
    s.apply(KIND_VPCIPS, MODIFIED, ip_of("10.0.0.5", "n2", phase="Free", claim="default/db-0"))
    assert s.snapshot().node_awaiting == {"n1": 1}


def test_relists_recount() -> None:
    s = store()
    s.apply(KIND_PODS, ADDED, bound("a", "n1"))
    s.apply(KIND_PODS, ADDED, bound("b", "n1"))
    s.replace(KIND_VPCIPS, [ip_of("10.0.0.1", "n1", uid("a"))])
    assert s.snapshot().node_awaiting == {"n1": 1}
    s.replace(KIND_VPCIPS, [])
    assert s.snapshot().node_awaiting == {"n1": 2}
    s.replace(KIND_PODS, [bound("c", "n3")])
    assert s.snapshot().node_awaiting == {"n3": 1}
    s.replace(KIND_PODS, [])
    assert s.snapshot().node_awaiting == {}


def test_filter_subtracts_the_bound_pods_and_says_so() -> None:
    s = store()
    s.apply(KIND_CONFIGMAPS, ADDED, ex.ipamd_configmap("subnet-a"))
    s.apply(KIND_CONFIGMAPS, ADDED, ex.status_configmap(ex.subnet("subnet-a", GZ3)))
    for n in ("n1", "n2"):
        s.apply(KIND_NODES, ADDED, ex.node(n, GZ3, 3))
        s.apply(KIND_VPCIPS, ADDED, ip_of(f"10.0.{n[-1]}.1", n, "uid-x"))
        s.apply(KIND_VPCIPS, ADDED, ip_of(f"10.0.{n[-1]}.2", n, "uid-y"))
    s.apply(KIND_PODS, ADDED, bound("a", "n1"))
    snap = s.snapshot()
    pod = pod_facts(ex.pod("next"))
    out = decide.filter_nodes(pod, ["n1", "n2"], snap.nodes, snap)
    assert out.passed == ["n2"]
    assert out.failed["n1"] == (
        decide.PREFIX + "no ENI IP headroom: every tke.cloud.tencent.com/eni-ip of the node is "
        "in use, cooling down, reserved for a static IP or taken by a pod bound there waiting "
        "for its IP"
    )
    assert out.codes[decide.RESULT_FAILED, decide.NO_HEADROOM] == 1
    # a warm IP that a bound pod will take does not make the node warm
    s.apply(KIND_VPCIPS, ADDED, ex.vpc_ip("10.0.1.3", "n1"))
    s.apply(KIND_VPCIPS, ADDED, ex.vpc_ip("10.0.2.3", "n2"))
    snap = s.snapshot()
    scores = dict(decide.prioritize(pod, ["n1", "n2"], snap.nodes, snap))
    assert scores["n2"] > scores["n1"]
