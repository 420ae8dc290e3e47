"""Pure pod-EIP rules: the annotations' validation and the one-step plan."""

from __future__ import annotations

import pytest

from core import eip as ce

STS = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}]
RS = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True}]


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ('{"Bandwidth":"100","ISP":"BGP"}', ce.EipAttributes(100, "BGP", None)),
        ("{}", ce.EipAttributes()),
        (
            '{"Bandwidth":200,"InternetChargeType":"BANDWIDTH_PREPAID_BY_MONTH"}',
            ce.EipAttributes(200, None, "BANDWIDTH_PREPAID_BY_MONTH"),
        ),
    ],
)
def test_valid_attributes(raw: str, want: ce.EipAttributes) -> None:
    assert ce.parse_attributes(raw) == (want, "")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("{bad", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"Bandwith":"1"}', "unknown key(s) Bandwith"),
        ('{"Bandwidth":"0"}', "outside [1, 100]"),
        ('{"Bandwidth":"101"}', "outside [1, 100]"),
        ('{"Bandwidth":"ten"}', "not a whole number"),
        ('{"Bandwidth":true}', "not a whole number"),
        ('{"ISP":"XYZ"}', "ISP 'XYZ'"),
        ('{"InternetChargeType":"FREE"}', "InternetChargeType 'FREE'"),
    ],
)
def test_invalid_attributes(raw: str, fragment: str) -> None:
    attrs, why = ce.parse_attributes(raw)
    assert attrs is None and fragment in why


def test_request_policy() -> None:
    assert ce.eip_request({}) is None
    ok = ce.eip_request({ce.ANNOTATION_EIP_ATTRIBUTES: "{}"}, RS)
    assert ok is not None and ok.attributes == ce.EipAttributes() and not ok.never
    never = ce.eip_request(
        {ce.ANNOTATION_EIP_ATTRIBUTES: "{}", ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "Never"}, STS
    )
    assert never is not None and never.never and not never.reason
    ignored = ce.eip_request(
        {ce.ANNOTATION_EIP_ATTRIBUTES: "{}", ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "Never"}, RS
    )
    assert ignored is not None and ignored.attributes is not None and not ignored.never
    assert ignored.reason == ce.REASON_NEEDS_STATEFULSET
    bad = ce.eip_request(
        {ce.ANNOTATION_EIP_ATTRIBUTES: "{}", ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "never"}, STS
    )
    assert bad is not None and bad.attributes is None and bad.reason == ce.REASON_INVALID_POLICY
    broken = ce.eip_request({ce.ANNOTATION_EIP_ATTRIBUTES: "{x"}, STS)
    assert broken is not None and broken.attributes is None
    assert broken.reason == ce.REASON_INVALID_ATTRIBUTES


def _eip(
    eid: str,
    status: str = "UNBIND",
    *,
    uid: str = "u1",
    never: bool = False,
    eni: str | None = None,
    ip: str | None = None,
    age: float = 1000.0,
) -> ce.EipView:
    tags = {
        ce.TAG_POD: "ns/p",
        ce.TAG_POD_UID: uid,
        ce.TAG_POLICY: "Never" if never else "Immediate",
    }
    return ce.EipView(eid, "203.0.113.9", status, eni, ip, tags, age)


POD = ce.PodView("u1", False, "10.0.0.5", "eni-1")


def _plan(pod: ce.PodView | None, eips: list[ce.EipView], **kw: object) -> ce.Step:
    args: dict[str, object] = {"pod_known": pod is not None, "owner_gone": False, "min_age_s": 60}
    args.update(kw)
    return ce.plan(pod, eips, **args)  # type: ignore[arg-type]


def test_plan_running_pod() -> None:
    assert _plan(POD, []).action == "allocate"
    assert _plan(POD, [_eip("eip-a", "CREATING")]).action == "wait"
    assert _plan(POD, [_eip("eip-a")]).action == "associate"
    bound = _eip("eip-a", "BIND", eni="eni-1", ip="10.0.0.5")
    assert _plan(POD, [bound]).action == "annotate"
    moved = _eip("eip-a", "BIND", eni="eni-1", ip="10.0.0.9")
    assert _plan(POD, [moved]).action == "disassociate"
    no_ip = ce.PodView("u1", False, "", "")
    assert _plan(no_ip, [_eip("eip-a")]).action == "annotate"


def test_plan_immediate_pod_recreated_gets_a_new_eip_and_the_old_is_released() -> None:
    old = _eip("eip-old", "BIND", uid="u0", eni="eni-1", ip="10.0.0.4")
    new_pod = ce.PodView("u1", False, "10.0.0.5", "eni-1")
    step = _plan(new_pod, [old])
    assert (step.action, step.eip) == ("disassociate", old)
    old_free = _eip("eip-old", uid="u0")
    assert _plan(new_pod, [old_free]).action == "release"
    assert _plan(new_pod, [_eip("eip-new", uid="u1")]).action == "associate"


def test_plan_never_keeps_the_eip_for_the_next_pod() -> None:
    kept = _eip("eip-k", "BIND", uid="u0", never=True, eni="eni-1", ip="10.0.0.4")
    assert _plan(None, [kept], pod_known=False).action == "disassociate"
    free = _eip("eip-k", uid="u0", never=True)
    assert _plan(None, [free], pod_known=False).action == "done"
    assert _plan(None, [free], pod_known=False, owner_gone=True).action == "release"
    again = ce.PodView("u2", True, "10.0.0.7", "eni-2")
    step = _plan(again, [free])
    assert (step.action, step.eip) == ("associate", free)


def test_plan_leaks_wait_for_the_minimum_age() -> None:
    young = _eip("eip-y", age=5)
    assert _plan(None, [young], pod_known=False).action == "wait"
    assert _plan(None, [young], pod_known=True).action == "release"  # deleting: at once
    assert _plan(None, [_eip("eip-o", age=100)], pod_known=False).action == "release"
