"""The extender's rules as a pure function over a snapshot, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import (
    IP_PHASE_COOLDOWN,
    IP_PHASE_IN_USE,
    IP_PHASE_RELEASED,
    IP_STATE_RELEASING,
    SUBNET_DRAINING,
    SUBNET_INVALID,
)
from localcluster import objects as ex
from scheduler_extender import decide
from scheduler_extender.pod import pod_facts
from scheduler_extender.snapshot import Snapshot
from scheduler_extender.store import (
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_VPCENIS,
    KIND_VPCIPS,
    Store,
)

GZ3, GZ4, GZ6 = "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6"


def base() -> dict[str, list[dict[str, Any]]]:
    """gz-3: subnet-a with free IPs; gz-4: subnet-b exhausted; gz-6: no subnet."""
    return {
        KIND_NODES: [
            ex.node("n3a", GZ3),
            ex.node("n3legacy", GZ3, legacy_zone=True),
            ex.node("n3full", GZ3, eni_ip=2),
            ex.node("n3nores", GZ3, eni_ip=None),
            ex.node("n4warm", GZ4),
            ex.node("n4cold", GZ4),
            ex.node("n6", GZ6),
            ex.node("nozone", None),
        ],
        KIND_VPCIPS: [
            ex.vpc_ip("10.0.4.10", "n4warm", subnet="subnet-b"),
            ex.vpc_ip("10.0.3.20", "n3full", phase=IP_PHASE_IN_USE),
            ex.vpc_ip("10.0.3.21", "n3full", phase=IP_PHASE_COOLDOWN),
        ],
        KIND_VPCENIS: [ex.vpc_eni("eni-4", "n4warm", "subnet-b")],
        KIND_CLAIMS: [],
        KIND_CONFIGMAPS: [
            ex.ipamd_configmap("subnet-a", "subnet-b"),
            ex.status_configmap(
                ex.subnet("subnet-a", GZ3, available=100), ex.subnet("subnet-b", GZ4, available=0)
            ),
        ],
    }


def snapshot(objects: dict[str, list[dict[str, Any]]]) -> Snapshot:
    store = Store()
    for kind, items in objects.items():
        store.replace(kind, items)
    return store.snapshot()


def judge(pod: dict[str, Any], snap: Snapshot, names: list[str] | None = None) -> dict[str, str]:
    """node → "ok" / "failed:<code>" / "unresolvable:<code>"."""
    candidates = names if names is not None else sorted(snap.nodes)
    decision = decide.filter_nodes(pod_facts(pod), candidates, snap.nodes, snap)
    out = dict.fromkeys(decision.passed, "ok")
    for name, message in decision.failed.items():
        out[name] = "failed:" + _code(message)
    for name, message in decision.unresolvable.items():
        out[name] = "unresolvable:" + _code(message)
    assert set(out) == set(candidates), "every candidate gets exactly one verdict"
    return out


def _code(message: str) -> str:
    assert message.startswith(decide.PREFIX)
    detail = message[len(decide.PREFIX) :]
    for needle, code in (
        ("no ENI IP headroom", decide.NO_HEADROOM),
        ("extender's node cache", decide.UNKNOWN_NODE),
        ("has no zone label", decide.NO_ZONE_LABEL),
        ("has no subnet in ConfigMap", decide.ZONE_NO_SUBNET),
        ("no usable subnet", decide.ZONE_SUBNET_UNUSABLE),
        ("not yet validated by tke-eni-ipamd", decide.SUBNET_NOT_VALIDATED),
        ("no free IP", decide.SUBNET_EXHAUSTED),
        ("not known yet", decide.STATIC_IP_ZONE_UNKNOWN),
        ("static IP", decide.STATIC_IP_ZONE),
        ("advertises no", decide.NO_ENI_IP_RESOURCE),
        ("not found", decide.NO_SUBNET_CONFIG),
        ("lists no subnet", decide.NO_SUBNET_CONFIG),
    ):
        if needle in detail:
            return code
    raise AssertionError(f"unclassified reason: {message}")


OK = "ok"
FAILED_EXHAUSTED = "failed:" + decide.SUBNET_EXHAUSTED
NO_SUBNET = "unresolvable:" + decide.ZONE_NO_SUBNET
NO_LABEL = "unresolvable:" + decide.NO_ZONE_LABEL
NO_HEADROOM = "failed:" + decide.NO_HEADROOM
NO_RESOURCE = "failed:" + decide.NO_ENI_IP_RESOURCE
WRONG_ZONE = "unresolvable:" + decide.STATIC_IP_ZONE

BASE_VERDICTS = {
    "n3a": OK,
    "n3legacy": OK,  # legacy zone label as fallback
    "n3full": NO_HEADROOM,  # 2 allocatable: 1 in use + 1 cooling down
    "n3nores": NO_RESOURCE,
    "n4warm": OK,  # subnet-b exhausted, but the node holds a warm IP
    "n4cold": FAILED_EXHAUSTED,
    "n6": NO_SUBNET,
    "nozone": NO_LABEL,
}


def _with(**changes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    objects = base()
    objects.update(changes)
    return objects


CASES: list[tuple[str, dict[str, Any], dict[str, list[dict[str, Any]]], dict[str, str]]] = [
    ("ordinary pod", ex.pod(), base(), BASE_VERDICTS),
    (
        "pod without eni-ip passes every known node",
        ex.pod(eni_ip=None),
        base(),
        dict.fromkeys(BASE_VERDICTS, OK),
    ),
    (
        "static pod without a claim is an ordinary pod",
        ex.pod(static=True),
        base(),
        BASE_VERDICTS,
    ),
    (
        "claim without an IP yet: ordinary pod",
        ex.pod(static=True),
        _with(**{KIND_CLAIMS: [ex.claim("default", "web-0")]}),
        BASE_VERDICTS,
    ),
    (
        "static pod: only the claim's zone, exhausted subnet does not matter",
        ex.pod(static=True),
        _with(
            **{
                KIND_CLAIMS: [
                    ex.claim("default", "web-0", "10.0.4.77", zone=GZ4, subnet="subnet-b")
                ]
            }
        ),
        {
            "n3a": WRONG_ZONE,
            "n3legacy": WRONG_ZONE,
            "n3full": WRONG_ZONE,
            "n3nores": WRONG_ZONE,
            "n4warm": OK,
            "n4cold": OK,
            "n6": WRONG_ZONE,
            "nozone": WRONG_ZONE,
        },
    ),
    (
        "claim zone found through the subnet status",
        ex.pod(static=True),
        _with(**{KIND_CLAIMS: [ex.claim("default", "web-0", "10.0.3.77", subnet="subnet-a")]}),
        {
            "n3a": OK,
            "n3legacy": OK,
            "n3full": NO_HEADROOM,
            "n3nores": NO_RESOURCE,
            "n4warm": WRONG_ZONE,
            "n4cold": WRONG_ZONE,
            "n6": WRONG_ZONE,
            "nozone": WRONG_ZONE,
        },
    ),
    (
        "claim of a pod with another name does not apply",
        ex.pod(static=True),
        _with(**{KIND_CLAIMS: [ex.claim("default", "web-1", "10.0.4.77", zone=GZ4)]}),
        BASE_VERDICTS,
    ),
    (
        "claim zone unknown: resolvable failure everywhere",
        ex.pod(static=True),
        _with(**{KIND_CLAIMS: [ex.claim("default", "web-0", "10.9.9.9", subnet="subnet-z")]}),
        dict.fromkeys(BASE_VERDICTS, "failed:" + decide.STATIC_IP_ZONE_UNKNOWN),
    ),
    (
        "static IP already on a full node needs no new slot",
        ex.pod(static=True),
        _with(
            **{
                KIND_CLAIMS: [ex.claim("default", "web-0", "10.0.3.30", zone=GZ3)],
                KIND_VPCIPS: [
                    ex.vpc_ip("10.0.3.20", "n3full", phase=IP_PHASE_IN_USE),
                    ex.vpc_ip("10.0.3.30", "n3full", phase="", claim="default/web-0"),
                ],
            }
        ),
        {
            "n3a": OK,
            "n3legacy": OK,
            "n3full": OK,
            "n3nores": NO_RESOURCE,
            "n4warm": WRONG_ZONE,
            "n4cold": WRONG_ZONE,
            "n6": WRONG_ZONE,
            "nozone": WRONG_ZONE,
        },
    ),
    (
        "IPs reserved for other claims and cooling down fill the node; leaving ones do not",
        ex.pod(),
        _with(
            **{
                KIND_VPCIPS: [
                    ex.vpc_ip("10.0.3.20", "n3full", claim="default/db-0"),
                    ex.vpc_ip("10.0.3.21", "n3full", phase=IP_PHASE_COOLDOWN),
                    ex.vpc_ip("10.0.3.22", "n3a", state=IP_STATE_RELEASING),
                    ex.vpc_ip("10.0.3.23", "n3a", phase=IP_PHASE_RELEASED),
                ]
            }
        ),
        {**BASE_VERDICTS, "n4warm": FAILED_EXHAUSTED},
    ),
    (
        "request of 2 needs two slots",
        ex.pod(eni_ip=2),
        _with(**{KIND_VPCIPS: [ex.vpc_ip("10.0.3.20", "n3full", phase=IP_PHASE_IN_USE)]}),
        {**BASE_VERDICTS, "n4warm": FAILED_EXHAUSTED},
    ),
    (
        "configured subnet not validated yet: resolvable in zones without a known subnet",
        ex.pod(),
        _with(
            **{
                KIND_CONFIGMAPS: [
                    ex.ipamd_configmap("subnet-a", "subnet-b", "subnet-new"),
                    ex.status_configmap(ex.subnet("subnet-a", GZ3), ex.subnet("subnet-b", GZ4, 0)),
                ]
            }
        ),
        {**BASE_VERDICTS, "n6": "failed:" + decide.SUBNET_NOT_VALIDATED},
    ),
    (
        "no status ConfigMap yet: every labelled node waits for ipamd",
        ex.pod(),
        _with(**{KIND_CONFIGMAPS: [ex.ipamd_configmap("subnet-a")]}),
        {
            **dict.fromkeys(BASE_VERDICTS, "failed:" + decide.SUBNET_NOT_VALIDATED),
            "nozone": NO_LABEL,
        },
    ),
    (
        "no ipamd ConfigMap",
        ex.pod(),
        _with(**{KIND_CONFIGMAPS: []}),
        {
            **dict.fromkeys(BASE_VERDICTS, "unresolvable:" + decide.NO_SUBNET_CONFIG),
            "nozone": NO_LABEL,
        },
    ),
    (
        "Invalid and Draining subnets are not usable",
        ex.pod(),
        _with(
            **{
                KIND_CONFIGMAPS: [
                    ex.ipamd_configmap("subnet-a", "subnet-b"),
                    ex.status_configmap(
                        ex.subnet("subnet-a", GZ3, state=SUBNET_INVALID, reason="not in VPC"),
                        ex.subnet("subnet-b", GZ4, state=SUBNET_DRAINING),
                    ),
                ]
            }
        ),
        {
            **dict.fromkeys(BASE_VERDICTS, "unresolvable:" + decide.ZONE_SUBNET_UNUSABLE),
            "n6": NO_SUBNET,
            "nozone": NO_LABEL,
        },
    ),
]


@pytest.mark.parametrize(
    ("pod", "objects", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_filter_rules(
    pod: dict[str, Any], objects: dict[str, list[dict[str, Any]]], expected: dict[str, str]
) -> None:
    assert judge(pod, snapshot(objects)) == expected


def test_unknown_node_fails_resolvably() -> None:
    snap = snapshot(base())
    assert judge(ex.pod(), snap, ["n3a", "ghost"]) == {
        "n3a": OK,
        "ghost": "failed:" + decide.UNKNOWN_NODE,
    }
    assert judge(ex.pod(eni_ip=None), snap, ["ghost"]) == {"ghost": "failed:unknown-node"}


def test_reason_texts_a_user_can_act_on() -> None:
    snap = snapshot(base())
    d = decide.filter_nodes(pod_facts(ex.pod()), sorted(snap.nodes), snap.nodes, snap)
    assert d.unresolvable["n6"] == (
        "node(s) rejected by tke-eni-ip-scheduler: zone ap-guangzhou-6 has no subnet in "
        "ConfigMap kube-system/tke-eni-ipamd (subnets are in zone ap-guangzhou-3, ap-guangzhou-4)"
    )
    assert "subnet subnet-b exhausted" in d.failed["n4cold"]
    assert "zone ap-guangzhou-4" in d.failed["n4cold"]
    claim = ex.claim("default", "web-0", "10.0.4.77", zone=GZ4)
    snap = snapshot(_with(**{KIND_CLAIMS: [claim]}))
    d = decide.filter_nodes(pod_facts(ex.pod(static=True)), ["n3a"], snap.nodes, snap)
    assert d.unresolvable["n3a"] == (
        "node(s) rejected by tke-eni-ip-scheduler: static IP 10.0.4.77 (VpcIPClaim default/web-0) "
        "is in zone ap-guangzhou-4; node is in zone ap-guangzhou-3"
    )
    assert d.static_ip == "10.0.4.77"


def test_reasons_do_not_name_the_node_so_the_scheduler_can_count_them() -> None:
    snap = snapshot(base())
    d = decide.filter_nodes(pod_facts(ex.pod()), sorted(snap.nodes), snap.nodes, snap)
    for name, message in {**d.failed, **d.unresolvable}.items():
        assert name not in message


def test_decision_codes_count_nodes() -> None:
    snap = snapshot(base())
    d = decide.filter_nodes(pod_facts(ex.pod()), sorted(snap.nodes), snap.nodes, snap)
    assert d.codes[decide.RESULT_PASSED, decide.OK] == 3
    assert d.codes[decide.RESULT_UNRESOLVABLE, decide.ZONE_NO_SUBNET] == 1
    assert d.codes[decide.RESULT_FAILED, decide.SUBNET_EXHAUSTED] == 1
    assert sum(d.codes.values()) == len(snap.nodes)


PRIORITY_CASES = [
    (
        "warm beats cold; emptier subnet wins among cold nodes",
        ex.pod(),
        {
            KIND_NODES: [ex.node("a", GZ3), ex.node("b", GZ4), ex.node("c", GZ3)],
            KIND_VPCIPS: [ex.vpc_ip("10.0.0.1", "c")],
            KIND_CONFIGMAPS: [
                ex.ipamd_configmap("subnet-a", "subnet-b"),
                ex.status_configmap(
                    ex.subnet("subnet-a", GZ3, available=200, total=200),
                    ex.subnet("subnet-b", GZ4, available=20, total=200),
                ),
            ],
        },
        ["a", "b", "c", "ghost"],
        {"a": 5, "b": 0, "c": 10, "ghost": 0},
    ),
    (
        "static pod: its IP's node, then an ENI in its subnet, then the rest",
        ex.pod(static=True),
        {
            KIND_NODES: [ex.node("a", GZ3), ex.node("b", GZ3), ex.node("c", GZ3)],
            KIND_VPCIPS: [ex.vpc_ip("10.0.0.9", "c", claim="default/web-0")],
            KIND_VPCENIS: [ex.vpc_eni("eni-b", "b", "subnet-a")],
            KIND_CLAIMS: [ex.claim("default", "web-0", "10.0.0.9", zone=GZ3, subnet="subnet-a")],
            KIND_CONFIGMAPS: [
                ex.ipamd_configmap("subnet-a"),
                ex.status_configmap(ex.subnet("subnet-a", GZ3)),
            ],
        },
        ["a", "b", "c"],
        {"a": 4, "b": 8, "c": 10},
    ),
    (
        "no eni-ip: neutral",
        ex.pod(eni_ip=None),
        base(),
        ["n3a", "n4warm"],
        {"n3a": 0, "n4warm": 0},
    ),
]


@pytest.mark.parametrize(
    ("pod", "objects", "names", "expected"),
    [c[1:] for c in PRIORITY_CASES],
    ids=[c[0] for c in PRIORITY_CASES],
)
def test_prioritize(
    pod: dict[str, Any],
    objects: dict[str, list[dict[str, Any]]],
    names: list[str],
    expected: dict[str, int],
) -> None:
    snap = snapshot(objects)
    scores = decide.prioritize(pod_facts(pod), names, snap.nodes, snap)
    assert [n for n, _ in scores] == names
    assert dict(scores) == expected
    assert all(0 <= s <= decide.MAX_SCORE for _, s in scores)


def test_nodes_mode_uses_the_request_nodes_not_the_cache() -> None:
    snap = snapshot(base())
    from scheduler_extender.facts import node_facts

    fresh = {"n6": node_facts(ex.node("n6", GZ3))}  # relabelled since the cache saw it
    d = decide.filter_nodes(pod_facts(ex.pod()), ["n6"], fresh, snap)
    assert d.passed == ["n6"]
