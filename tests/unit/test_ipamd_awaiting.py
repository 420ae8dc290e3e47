"""ipamd.rules.awaiting (the pods bound to a node that wait for a dynamic IP,
and what they are owed) and core.podrequest (a pod's eni-ip request)."""

from __future__ import annotations

from typing import Any

import pytest

from core import models as m
from core import names
from core.podrequest import RequestError, eni_ip_request
from ipamd.rules.awaiting import WaitingPod, held_by_pod, owed, waiting_pod_from_obj
from ipamd.rules.records import IpRec
from scheduler_extender.pod import PodError, pod_facts

ENI = names.RESOURCE_ENI_IP
STS = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "name": "db",
    "uid": "s1",
    "controller": True,
}


def container(req: object = None, lim: object = None) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if req is not None:
        res["requests"] = {ENI: req}
    if lim is not None:
        res["limits"] = {ENI: lim}
    return {"name": "c", "resources": res}


def pod(
    *,
    node: str = "n1",
    phase: str | None = "Pending",
    uid: str = "u1",
    containers: list[Any] | None = None,
    init: list[Any] | None = None,
    host_network: bool = False,
    deleting: bool = False,
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "p", "namespace": "default", "uid": uid}
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [owner]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: dict[str, Any] = {
        "containers": containers if containers is not None else [container("1", "1")]
    }
    if node:
        spec["nodeName"] = node
    if init is not None:
        spec["initContainers"] = init
    if host_network:
        spec["hostNetwork"] = True
    obj: dict[str, Any] = {"metadata": meta, "spec": spec}
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


# --- core.podrequest ---


REQUESTS: list[tuple[dict[str, Any], int | None]] = [  # None: unreadable
    ({"containers": [container("1", "1")]}, 1),
    ({"containers": [container(lim="1")]}, 1),  # the request defaults to the limit
    ({"containers": [container("2"), container(1)]}, 3),  # summed
    ({"containers": [container("1")], "initContainers": [container("3"), container("2")]}, 3),
    ({"containers": [container()]}, 0),
    ({"containers": [{"name": "c"}]}, 0),
    ({}, 0),
    ({"containers": [container("0.5")]}, None),
    ({"containers": [container("1k")]}, None),
    ({"containers": [container(True)]}, None),
    ({"containers": [container(-1)]}, None),
    ({"containers": "x"}, None),
    ({"containers": [{"name": "c", "resources": {"requests": "1"}}]}, None),
]
SPECS = [spec for spec, _ in REQUESTS]


@pytest.mark.parametrize(("spec", "want"), REQUESTS)
def test_eni_ip_request(spec: dict[str, Any], want: int | None) -> None:
    if want is None:
        with pytest.raises(RequestError):
            eni_ip_request(spec)
    else:
        assert eni_ip_request(spec) == want


@pytest.mark.parametrize("spec", SPECS)
def test_request_reads_as_the_scheduler_extender_does(spec: dict[str, Any]) -> None:
    """One reading of the request: the extender's (scheduler_extender.pod) and this."""
    obj = {"metadata": {"name": "p", "namespace": "default"}, "spec": spec}
    try:
        theirs: int | None = pod_facts(obj).eni_ips
    except PodError:
        theirs = None
    try:
        ours: int | None = eni_ip_request(spec)
    except RequestError:
        ours = None
    assert ours == theirs


# --- which pods wait ---


def test_a_bound_pending_pod_requesting_eni_ip_waits() -> None:
    assert waiting_pod_from_obj(pod()) == WaitingPod("u1", "n1", 1)
    assert waiting_pod_from_obj(pod(phase=None)) == WaitingPod("u1", "n1", 1)  # no status yet
    two = pod(containers=[container("1"), container("1")])
    assert waiting_pod_from_obj(two) == WaitingPod("u1", "n1", 2)


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        (pod(node=""), "not bound"),
        (pod(phase="Running"), "its sandbox is up"),
        (pod(phase="Succeeded"), "finished"),
        (pod(phase="Failed"), "finished"),
        (pod(deleting=True), "being deleted"),
        (pod(host_network=True), "host network"),
        (pod(containers=[{"name": "c"}]), "no eni-ip request"),
        (pod(containers=[container("half")]), "unreadable request"),
        (pod(uid=""), "no uid"),
        (
            pod(annotations={names.ANNOTATION_CLAIM_DELETE_POLICY: "Never"}, owner=STS),
            "static IP: its claim gives it its IP",
        ),
        ({"metadata": "x", "spec": {}}, "not a pod"),
    ],
)
def test_pods_that_wait_for_no_dynamic_ip(obj: dict[str, Any], why: str) -> None:
    assert waiting_pod_from_obj(obj) is None, why


def test_claim_policies_that_give_a_dynamic_ip_wait() -> None:
    immediate = pod(annotations={names.ANNOTATION_CLAIM_DELETE_POLICY: "Immediate"}, owner=STS)
    assert waiting_pod_from_obj(immediate) is not None
    # Never on a bare pod: not static (a Warning elsewhere), so a dynamic IP
    bare = pod(annotations={names.ANNOTATION_CLAIM_DELETE_POLICY: "Never"})
    assert waiting_pod_from_obj(bare) is not None


# --- what they are owed ---


def ip(
    address: str, *, phase: str = "", uid: str = "", claim: str = "", unclaimed: str = ""
) -> IpRec:
    return IpRec(
        address,
        "n1",
        "eni-1",
        "s",
        "z",
        m.IP_STATE_ASSIGNED,
        claim,
        "",
        phase,
        uid,
        "",
        unclaimed_uid=unclaimed,
    )


def test_held_by_pod() -> None:
    ips = [
        ip("10.0.0.1", phase=m.IP_PHASE_IN_USE, uid="a"),
        ip("10.0.0.2", phase=m.IP_PHASE_IN_USE, uid="a"),
        ip("10.0.0.3", phase=m.IP_PHASE_COOLDOWN, uid="b"),  # released by b: not b's any more
        ip("10.0.0.4"),  # free
        ip("10.0.0.5", unclaimed="c"),  # c's own (no sandbox right now)
        ip("10.0.0.6", phase=m.IP_PHASE_IN_USE, uid="d", unclaimed="d"),  # one IP, once
    ]
    assert held_by_pod(ips) == {"a": 2, "c": 1, "d": 1}


def test_owed_counts_each_pod_once() -> None:
    pods = [WaitingPod("a", "n1", 1), WaitingPod("b", "n1", 2), WaitingPod("c", "n1", 1)]
    assert owed(pods, {}) == 4
    assert owed(pods, {"a": 1}) == 3  # a has its IP: the pool counts it as used
    assert owed(pods, {"a": 3, "b": 1}) == 2  # never below 0 for a pod
    assert owed([], {"a": 1}) == 0
