"""The webhook adds tke.cloud.tencent.com/eip: "1" beside eni-ip to the first
container's requests and limits of a pod annotated eip-attributes (a pod EIP),
keeps what the user wrote, and adds nothing twice."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from core.eip import ANNOTATION_EIP_ATTRIBUTES, RESOURCE_EIP
from core.names import ANNOTATION_NETWORKS, RESOURCE_ENI_IP
from tests.webhook_support import apply_patch, pod, review_body
from webhook import decide
from webhook.app import admit
from webhook.config import Settings
from webhook.metrics import Metrics

EIP = {ANNOTATION_EIP_ATTRIBUTES: '{"Bandwidth":"100","ISP":"BGP"}'}


def both(p: dict[str, Any], name: str) -> tuple[Any, Any]:
    res = p["spec"]["containers"][0].get("resources") or {}
    return (res.get("requests") or {}).get(name), (res.get("limits") or {}).get(name)


@pytest.mark.parametrize(
    "resources",
    [None, {}, {"requests": {"cpu": "1"}}, {"limits": {"memory": "1Gi"}}, {"requests": None}],
)
def test_eip_pod_gets_eip_beside_eni_ip(resources: dict[str, Any] | None) -> None:
    p = pod(EIP)
    if resources is not None:
        p["spec"]["containers"][0]["resources"] = resources
    d = decide.pod_decision(p, eni_only_cluster=True)
    assert d.outcome == decide.PATCHED
    out = apply_patch(p, d.patch)
    assert both(out, RESOURCE_ENI_IP) == ("1", "1")
    assert both(out, RESOURCE_EIP) == ("1", "1")
    for key, values in (resources or {}).items():
        for name, value in (values or {}).items():
            assert out["spec"]["containers"][0]["resources"][key][name] == value


def test_eni_ip_already_there_gets_only_eip() -> None:
    p = pod(EIP)
    p["spec"]["containers"][0]["resources"] = {
        "requests": {RESOURCE_ENI_IP: "1"},
        "limits": {RESOURCE_ENI_IP: "1"},
    }
    d = decide.pod_decision(p, eni_only_cluster=True)
    out = apply_patch(p, d.patch)
    assert both(out, RESOURCE_EIP) == ("1", "1")
    assert both(out, RESOURCE_ENI_IP) == ("1", "1")


def test_both_already_there_or_no_annotation() -> None:
    p = pod(EIP)
    p["spec"]["containers"][0]["resources"] = {
        "requests": {RESOURCE_ENI_IP: "1", RESOURCE_EIP: "1"},
        "limits": {RESOURCE_ENI_IP: "1", RESOURCE_EIP: "1"},
    }
    assert decide.pod_decision(p, eni_only_cluster=True).outcome == decide.ALREADY_REQUESTS
    plain = apply_patch(pod(), decide.pod_decision(pod(), eni_only_cluster=True).patch)
    assert both(plain, RESOURCE_EIP) == (None, None)


def test_no_eni_ip_no_eip() -> None:
    # Method 2 (not ENI-only): a pod that does not name tke-route-eni takes no ENI IP,
    # and an EIP needs one: nothing is added
    assert decide.pod_decision(pod(EIP), eni_only_cluster=False).outcome == decide.NO_ENI_IP
    named = pod({**EIP, ANNOTATION_NETWORKS: "tke-route-eni"})
    d = decide.pod_decision(named, eni_only_cluster=False)
    assert both(apply_patch(named, d.patch), RESOURCE_EIP) == ("1", "1")
    assert decide.pod_decision(pod(EIP, hostNetwork=True), eni_only_cluster=True).outcome == (
        decide.HOST_NETWORK
    )


def test_through_the_admission_review() -> None:
    body, status, outcome = admit(review_body(pod(EIP)), Settings(eni_only=True), Metrics())
    assert (status, outcome) == (200, decide.PATCHED)
    resp = json.loads(body)["response"]
    ops = json.loads(base64.b64decode(resp["patch"]))
    out = apply_patch(pod(EIP), ops)
    assert both(out, RESOURCE_EIP) == ("1", "1")
