"""The extender's headroom is ``core.usable``, the rule the device plugin
applies to the agent's tally (issue 15): judged against the node's eni-ip
*capacity* (the instance limit), not its allocatable, which the device
plugin already lowered by the IPs cooling down and reserved — subtracting
them again would refuse pods the node can take."""

from __future__ import annotations

import json
from typing import Any

from core.models import IP_PHASE_COOLDOWN, IP_PHASE_FREE, IP_PHASE_IN_USE, IP_STATE_RELEASING
from core.names import RESOURCE_ENI_IP
from core.usable import IpTally, healthy_devices
from localcluster import objects as ex
from scheduler_extender import decide, facts, wire_fast
from scheduler_extender.pod import pod_facts
from scheduler_extender.store import (
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_VPCENIS,
    KIND_VPCIPS,
    Store,
)

GZ3 = "ap-guangzhou-3"
LIMIT = 27  # S5.LARGE8


def node(allocatable: int) -> dict[str, Any]:
    obj = ex.node("n1", GZ3, eni_ip=allocatable)
    obj["status"]["capacity"][RESOURCE_ENI_IP] = str(LIMIT)
    return obj


def ips(in_use: int, cooling: int, warm: int) -> list[dict[str, Any]]:
    phases = [IP_PHASE_IN_USE] * in_use + [IP_PHASE_COOLDOWN] * cooling + [IP_PHASE_FREE] * warm
    return [ex.vpc_ip(f"10.0.3.{10 + i}", "n1", phase=p) for i, p in enumerate(phases)]


def passes(allocatable: int, vpc_ips: list[dict[str, Any]], need: int, available: int) -> bool:
    store = Store()
    for kind, items in {
        KIND_NODES: [node(allocatable)],
        KIND_VPCIPS: vpc_ips,
        KIND_VPCENIS: [ex.vpc_eni("eni-1", "n1", "subnet-a")],
        KIND_CLAIMS: [],
        KIND_CONFIGMAPS: [
            ex.ipamd_configmap("subnet-a"),
            ex.status_configmap(ex.subnet("subnet-a", GZ3, available=available)),
        ],
    }.items():
        store.replace(kind, items)
    snap = store.snapshot()
    decision = decide.filter_nodes(pod_facts(ex.pod(eni_ip=need)), ["n1"], snap.nodes, snap)
    return decision.passed == ["n1"]


def test_cooling_ips_are_not_subtracted_twice() -> None:
    # 3 in use, 10 cooling, the zone can refill: 27 − 13 = 14 usable, allocatable 3 + 14
    t = IpTally(in_use=3, cooling=10, can_grow=True)
    allocatable = healthy_devices(t, LIMIT)
    assert allocatable == 17
    assert passes(allocatable, ips(3, 10, 0), need=14, available=100)
    assert not passes(allocatable, ips(3, 10, 0), need=15, available=100)


def test_the_issues_node_after_the_scale_down_and_after_the_cooldown() -> None:
    # filled (27), scaled back to 3: the 24 others cool down
    assert not passes(3, ips(3, 24, 0), need=1, available=100)
    # cooldown over: the agent reports them Free, the plugin 27 healthy
    assert passes(27, ips(3, 0, 24), need=1, available=100)


def test_an_exhausted_zone_counts_the_warm_ips_only() -> None:
    t = IpTally(in_use=1, warm=2)
    assert healthy_devices(t, LIMIT) == 3
    assert passes(3, ips(1, 0, 2), need=2, available=0)
    assert not passes(3, ips(1, 0, 2), need=3, available=0)


def test_nodes_mode_reads_the_capacity_too() -> None:
    body = json.dumps({"Pod": ex.pod(), "Nodes": {"items": [node(5)]}}).encode()
    _, names, _, nodes = wire_fast.decode_args(body)
    assert names == ["n1"] and nodes is not None
    assert nodes["n1"] == facts.NodeFacts("n1", GZ3, 5, LIMIT)
    assert facts.node_facts(node(5)) == facts.NodeFacts("n1", GZ3, 5, LIMIT)


def test_leaving_ips_take_their_slot_as_the_agent_counts_them() -> None:
    # 20 in use, 7 asked back by ipamd (Releasing): the agent counts them occupied
    t = IpTally(in_use=20, leaving=7, can_grow=True)
    assert healthy_devices(t, LIMIT) == 20
    leaving = [
        ex.vpc_ip(f"10.0.4.{10 + i}", "n1", state=IP_STATE_RELEASING, phase=IP_PHASE_FREE)
        for i in range(7)
    ]
    assert not passes(20, ips(20, 0, 0) + leaving, need=1, available=100)
