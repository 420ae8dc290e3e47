"""One reading of the claim annotations (core.claimpolicy), the same in ipamd,
the agent and the scheduler extender; and the agent's side of the release
handshake: it echoes the request id it grants."""

from __future__ import annotations

from typing import Any

import pytest

from cni.agent import pool
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView, view_from_json
from cni.agent.pool import PoolState
from cni.agent.sources.kube_ipsource import ip_of, status_patch
from core import claimpolicy as cp
from core import models as m
from core import names
from core.ids import EniId, IPv4
from ipamd.rules.records import ip_from_obj, pod_from_obj
from scheduler_extender.pod import pod_facts

STS = {
    "apiVersion": "apps/v1",
    "kind": "StatefulSet",
    "name": "web",
    "uid": "u",
    "controller": True,
}
RS = {
    "apiVersion": "apps/v1",
    "kind": "ReplicaSet",
    "name": "api-7f9c",
    "uid": "u",
    "controller": True,
}
POLICY = names.ANNOTATION_CLAIM_DELETE_POLICY


def ann(policy: Any) -> dict[str, Any]:
    return {names.ANNOTATION_NETWORKS: names.NETWORK_ROUTE_ENI, POLICY: policy}


@pytest.mark.parametrize(
    ("annotations", "owners", "static", "reason"),
    [
        (ann("Never"), [STS], True, ""),
        (ann(" Never "), [STS], True, ""),  # whitespace is not a different policy
        (ann("Never"), [{**STS, "apiVersion": "apps/v1beta2"}], True, ""),
        (ann("Immediate"), [STS], False, ""),
        ({}, [STS], False, ""),
        (ann("never"), [STS], False, cp.REASON_INVALID_POLICY),
        (ann("Sometimes"), [STS], False, cp.REASON_INVALID_POLICY),
        (ann(7), [STS], False, cp.REASON_INVALID_POLICY),
        (ann("Never"), [RS], False, cp.REASON_NEEDS_STATEFULSET),  # a Deployment's pod
        (ann("Never"), [], False, cp.REASON_NEEDS_STATEFULSET),  # a bare pod
        (ann("Never"), None, False, cp.REASON_NEEDS_STATEFULSET),
        (ann("Never"), [{**STS, "controller": False}], False, cp.REASON_NEEDS_STATEFULSET),
        (
            ann("Never"),
            [{**STS, "apiVersion": "example.com/v1"}],
            False,
            cp.REASON_NEEDS_STATEFULSET,
        ),
        (ann("Never"), "garbage", False, cp.REASON_NEEDS_STATEFULSET),
    ],
)
def test_claim_policy(annotations: dict[str, Any], owners: Any, static: bool, reason: str) -> None:
    got = cp.claim_policy(annotations, owners)
    assert (got.static, got.reason) == (static, reason)
    assert cp.is_static(annotations, owners) is static
    if reason == cp.REASON_NEEDS_STATEFULSET:
        assert "StatefulSet pods only" in got.message and "dynamic IP" in got.message
    if reason == cp.REASON_INVALID_POLICY:
        assert POLICY in got.message and "Immediate, Never" in got.message


@pytest.mark.parametrize(
    ("value", "stored", "error"),
    [
        (None, "", ""),
        ("  ", "", ""),
        ("10m", "10m", ""),
        (" 1h30m ", "1h30m", ""),
        ("0s", "0s", ""),
        ("ten minutes", "", "expected a Go duration"),
        ("-5m", "", "must not be negative"),
        (5, "", "expected a string"),
    ],
)
def test_expired_duration(value: Any, stored: str, error: str) -> None:
    a = {} if value is None else {names.ANNOTATION_CLAIM_EXPIRED_DURATION: value}
    got = cp.parse_expired_duration(a)
    assert got.value == stored
    if error:
        assert error in got.error and names.ANNOTATION_CLAIM_EXPIRED_DURATION in got.error
        assert "ipamd default" in got.error
    else:
        assert got.error == ""


def _pod(policy: Any, owners: list[dict[str, Any]] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-0", "namespace": "default", "uid": "u1"}
    meta["annotations"] = ann(policy)
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": {"nodeName": "n1"}}


@pytest.mark.parametrize(
    ("policy", "owners"),
    [("Never", [STS]), ("Never ", [STS]), ("Never", [RS]), ("Never", None), ("never", [STS])],
)
def test_ipamd_and_extender_agree(policy: str, owners: list[dict[str, Any]] | None) -> None:
    pod = _pod(policy, owners)
    want = cp.is_static(pod["metadata"]["annotations"], owners)
    rec = pod_from_obj(pod)
    assert rec is not None and rec.static is want
    assert pod_facts(pod).static is want


# --- the agent echoes the release request it grants ---

ENI = EniInfo(
    EniId("eni-a"), "02:00:00:00:00:0a", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)


def _ip(addr: str, state: str = m.IP_STATE_ASSIGNED, rid: str = "") -> NodeIp:
    return NodeIp(IPv4(addr), EniId("eni-a"), state, release_id=rid)


def test_agent_echoes_the_request_it_grants() -> None:
    state = PoolState()
    v1 = NodeIpView((ENI,), (_ip("10.0.0.5", m.IP_STATE_RELEASING, "r-1"),), 1)
    assert pool.grant_releases(v1, state, 100.0)
    (u,) = pool.usage(v1, state, 100.0)
    assert (u.phase, u.release_id) == (m.IP_PHASE_RELEASED, "r-1")
    patch = status_patch(u)["status"]
    assert patch["phase"] == m.IP_PHASE_RELEASED and patch["releaseId"] == "r-1"
    # ipamd changed its mind, then asked again: the answer names the new request
    v2 = NodeIpView((ENI,), (_ip("10.0.0.5"),), 2)
    pool.grant_releases(v2, state, 100.0)
    (u,) = pool.usage(v2, state, 100.0)
    assert u.phase == m.IP_PHASE_FREE and status_patch(u)["status"]["releaseId"] is None
    v3 = NodeIpView((ENI,), (_ip("10.0.0.5", m.IP_STATE_RELEASING, "r-2"),), 3)
    pool.grant_releases(v3, state, 100.0)
    (u,) = pool.usage(v3, state, 100.0)
    assert (u.phase, u.release_id) == (m.IP_PHASE_RELEASED, "r-2")


def test_agent_reads_the_request_id() -> None:
    obj = {
        "metadata": {"name": "10.0.0.5"},
        "spec": {"eniId": "eni-a", "state": m.IP_STATE_RELEASING, "releaseId": "r-9"},
    }
    assert ip_of(obj).release_id == "r-9"
    v = view_from_json(
        {"ips": [{"ip": "10.0.0.5", "eni": "eni-a", "state": "Releasing", "releaseId": "r-9"}]}, 1
    )
    assert v.ips[0].release_id == "r-9"


@pytest.mark.parametrize(
    ("spec", "status", "granted"),
    [
        (
            {"state": "Releasing", "releaseId": "r-1"},
            {"phase": "Released", "releaseId": "r-1"},
            True,
        ),
        (
            {"state": "Releasing", "releaseId": "r-2"},
            {"phase": "Released", "releaseId": "r-1"},
            False,
        ),
        ({"state": "Releasing", "releaseId": "r-1"}, {"phase": "Released"}, False),  # old agent
        ({"state": "Releasing"}, {"phase": "Released"}, False),
        (
            {"state": "Assigned", "releaseId": "r-1"},
            {"phase": "Released", "releaseId": "r-1"},
            False,
        ),
        ({"state": "Releasing", "releaseId": "r-1"}, {"phase": "InUse", "releaseId": "r-1"}, False),
    ],
)
def test_ipamd_accepts_only_the_answer_to_its_request(
    spec: dict[str, str], status: dict[str, str], granted: bool
) -> None:
    rec = ip_from_obj({"metadata": {"name": "10.0.0.5"}, "spec": spec, "status": status})
    assert rec.release_granted is granted
