"""The store: watch events → snapshots (copy-on-write, consistent), counts per
node, subnet plan, sync and staleness."""

from __future__ import annotations

from core.models import ENI_PHASE_DETACHING, IP_PHASE_COOLDOWN, IP_PHASE_FREE, IP_PHASE_IN_USE
from localcluster import objects as ex
from scheduler_extender.snapshot import NodeIps
from scheduler_extender.store import (
    ADDED,
    DELETED,
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_VPCENIS,
    KIND_VPCIPS,
    KINDS,
    MODIFIED,
    Store,
)

GZ3 = "ap-guangzhou-3"


def synced_store(**kw: object) -> Store:
    store = Store(**kw)  # type: ignore[arg-type]
    for kind in KINDS:
        store.replace(kind, [])
        store.watch_up(kind)
    return store


def test_synced_only_after_every_kind_listed() -> None:
    store = Store()
    for kind in KINDS[:-1]:
        store.replace(kind, [])
        assert not store.snapshot().synced
    store.replace(KINDS[-1], [])
    assert store.snapshot().synced


def test_snapshots_are_isolated_from_later_events() -> None:
    store = synced_store()
    store.apply(KIND_NODES, ADDED, ex.node("n1", GZ3))
    store.apply(KIND_VPCIPS, ADDED, ex.vpc_ip("10.0.0.1", "n1"))
    first = store.snapshot()
    assert store.snapshot() is first  # no change: the same snapshot
    store.apply(KIND_NODES, ADDED, ex.node("n2", GZ3))
    store.apply(KIND_VPCIPS, MODIFIED, ex.vpc_ip("10.0.0.1", "n1", phase=IP_PHASE_IN_USE))
    store.apply(KIND_CLAIMS, ADDED, ex.claim("default", "db-0", "10.0.0.1"))
    second = store.snapshot()
    assert set(first.nodes) == {"n1"}
    assert first.node_ips["n1"] == NodeIps(warm=1)
    assert "default/db-0" not in first.claims
    assert set(second.nodes) == {"n1", "n2"}
    assert second.node_ips["n1"] == NodeIps(in_use=1)
    assert second.claims["default/db-0"].ip == "10.0.0.1"
    assert second.generation > first.generation


def test_ip_counts_follow_phase_node_and_deletion() -> None:
    store = synced_store()
    store.replace(
        KIND_VPCIPS,
        [ex.vpc_ip("10.0.0.1", "n1"), ex.vpc_ip("10.0.0.2", "n1", claim="default/db-0")],
    )
    assert store.snapshot().node_ips["n1"] == NodeIps(warm=1, reserved=1)
    for phase, expected in (
        (IP_PHASE_IN_USE, NodeIps(in_use=1, reserved=1)),
        (IP_PHASE_COOLDOWN, NodeIps(cooldown=1, reserved=1)),
        (IP_PHASE_FREE, NodeIps(warm=1, reserved=1)),
    ):
        store.apply(KIND_VPCIPS, MODIFIED, ex.vpc_ip("10.0.0.1", "n1", phase=phase))
        assert store.snapshot().node_ips["n1"] == expected
    # the claimed IP moves to n2 (ipamd re-creates it there)
    store.apply(KIND_VPCIPS, MODIFIED, ex.vpc_ip("10.0.0.2", "n2", claim="default/db-0"))
    snap = store.snapshot()
    assert snap.node_ips["n1"] == NodeIps(warm=1)
    assert snap.node_ips["n2"] == NodeIps(reserved=1)
    assert snap.ips["10.0.0.2"].node == "n2"
    store.apply(KIND_VPCIPS, DELETED, ex.vpc_ip("10.0.0.1", "n1"))
    store.apply(KIND_VPCIPS, DELETED, ex.vpc_ip("10.0.0.2", "n2"))
    snap = store.snapshot()
    assert snap.node_ips == {}
    assert snap.ips == {}
    assert store.kind_states()[KIND_VPCIPS].objects == 0


def test_relist_replaces_everything() -> None:
    store = synced_store()
    store.apply(KIND_VPCIPS, ADDED, ex.vpc_ip("10.0.0.1", "n1"))
    store.replace(KIND_VPCIPS, [ex.vpc_ip("10.0.0.9", "n9")])
    snap = store.snapshot()
    assert set(snap.ips) == {"10.0.0.9"}
    assert set(snap.node_ips) == {"n9"}


def test_attached_enis_give_the_node_subnets() -> None:
    store = synced_store()
    store.apply(KIND_VPCENIS, ADDED, ex.vpc_eni("eni-1", "n1", "subnet-a"))
    store.apply(KIND_VPCENIS, ADDED, ex.vpc_eni("eni-2", "n1", "subnet-b"))
    assert store.snapshot().node_eni_subnets["n1"] == {"subnet-a", "subnet-b"}
    store.apply(
        KIND_VPCENIS, MODIFIED, ex.vpc_eni("eni-2", "n1", "subnet-b", phase=ENI_PHASE_DETACHING)
    )
    assert store.snapshot().node_eni_subnets["n1"] == {"subnet-a"}
    store.apply(KIND_VPCENIS, DELETED, ex.vpc_eni("eni-1", "n1", "subnet-a"))
    store.apply(KIND_VPCENIS, DELETED, ex.vpc_eni("eni-2", "n1", "subnet-b"))
    assert "n1" not in store.snapshot().node_eni_subnets


def test_subnet_plan_from_the_two_configmaps() -> None:
    store = synced_store()
    store.apply(KIND_CONFIGMAPS, ADDED, ex.ipamd_configmap("subnet-a", "subnet-b", "subnet-a"))
    plan = store.snapshot().plan
    assert plan.config.subnet_ids == ("subnet-a", "subnet-b")  # de-duplicated, in order
    assert plan.pending == ("subnet-a", "subnet-b")
    store.apply(
        KIND_CONFIGMAPS,
        ADDED,
        ex.status_configmap(ex.subnet("subnet-a", GZ3, 7, 10), ex.subnet("subnet-x", "gz-9")),
    )
    plan = store.snapshot().plan
    assert plan.pending == ("subnet-b",)
    assert plan.zones[GZ3].available == 7
    assert plan.zones[GZ3].free_fraction == 0.7
    assert "gz-9" not in plan.zones  # reported but not configured
    assert "subnet-x" in plan.by_id
    bad = ex.status_configmap()
    bad["data"]["subnets.json"] = "{not json"
    store.apply(KIND_CONFIGMAPS, MODIFIED, bad)
    assert store.snapshot().plan.pending == ("subnet-a", "subnet-b")
    store.apply(KIND_CONFIGMAPS, DELETED, ex.ipamd_configmap())
    assert not store.snapshot().plan.config.present


def test_malformed_objects_do_not_break_the_cache() -> None:
    store = synced_store()
    store.apply(KIND_NODES, ADDED, {"metadata": {"name": "n1", "labels": "x"}, "status": 5})
    store.apply(KIND_VPCIPS, ADDED, {"metadata": {"name": "10.0.0.1"}, "spec": "nonsense"})
    store.apply(KIND_CLAIMS, ADDED, {"metadata": {}, "status": {"ip": 7}})
    snap = store.snapshot()
    assert snap.nodes["n1"].zone is None
    assert snap.nodes["n1"].eni_ip_allocatable is None
    assert snap.ips["10.0.0.1"].node == ""


def test_allocatable_quantities() -> None:
    store = synced_store()
    for value, expected in (("30", 30), (12, 12), ("1k", 1000), ("2.5", None), (None, None)):
        node = ex.node("n1", GZ3)
        node["status"]["allocatable"]["tke.cloud.tencent.com/eni-ip"] = value
        store.apply(KIND_NODES, MODIFIED, node)
        assert store.snapshot().nodes["n1"].eni_ip_allocatable == expected, value


def test_stale_after_a_watch_is_down_long_enough() -> None:
    now = [100.0]
    store = synced_store(stale_after=30.0, clock=lambda: now[0])
    store.watch_down(KIND_VPCIPS)
    now[0] += 29
    assert store.snapshot().stale == ()
    store.watch_down(KIND_VPCIPS)  # still down: the clock keeps its first failure
    now[0] += 2
    assert store.snapshot().stale == (KIND_VPCIPS,)
    assert store.snapshot().synced  # stale data is still data
    store.watch_up(KIND_VPCIPS)
    assert store.snapshot().stale == ()


def test_never_listed_kind_is_not_stale_but_unsynced() -> None:
    now = [0.0]
    store = Store(clock=lambda: now[0])
    store.watch_down(KIND_NODES)
    now[0] += 1000
    snap = store.snapshot()
    assert snap.stale == ()
    assert not snap.synced
