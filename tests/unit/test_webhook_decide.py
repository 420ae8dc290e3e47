"""The webhook's pure decision and JSONPatch (webhook.decide), the AdmissionReview
wire format (webhook.review) and the warnings (webhook.warnings)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from core.names import (
    ANNOTATION_CLAIM_DELETE_POLICY,
    ANNOTATION_CLAIM_EXPIRED_DURATION,
    ANNOTATION_NETWORKS,
    RESOURCE_ENI_IP,
)
from tests.webhook_support import apply_patch, pod, review_body
from webhook import decide, review
from webhook.warnings import warnings_for

ROUTE = {ANNOTATION_NETWORKS: "tke-route-eni"}


def requests_limits(p: dict[str, Any], i: int = 0) -> tuple[Any, Any]:
    res = p["spec"]["containers"][i].get("resources") or {}
    return (res.get("requests") or {}).get(RESOURCE_ENI_IP), \
        (res.get("limits") or {}).get(RESOURCE_ENI_IP)


# --- the decision ----------------------------------------------------------------------------


def test_pointer_escapes_slash_and_tilde() -> None:
    assert decide.pointer_token("tke.cloud.tencent.com/eni-ip") == "tke.cloud.tencent.com~1eni-ip"
    assert decide.pointer_token("a~b/c") == "a~0b~1c"


@pytest.mark.parametrize("resources", [
    None,  # absent
    {},
    {"requests": {"cpu": "100m"}},
    {"limits": {"memory": "1Gi"}},
    {"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    {"requests": None, "limits": None},
])
def test_eni_only_pod_gets_the_request_in_both(resources: dict[str, Any] | None) -> None:
    p = pod()
    if resources is not None:
        p["spec"]["containers"][0]["resources"] = resources
    d = decide.pod_decision(p, eni_only_cluster=True)
    assert d.outcome == decide.PATCHED
    out = apply_patch(p, d.patch)
    assert requests_limits(out) == ("1", "1")
    # nothing the user wrote is lost
    for key, values in (resources or {}).items():
        for name, value in (values or {}).items():
            assert out["spec"]["containers"][0]["resources"][key][name] == value


def test_patch_is_the_first_container_only() -> None:
    p = pod()
    p["spec"]["containers"].append({"name": "side", "image": "x"})
    out = apply_patch(p, decide.pod_decision(p, eni_only_cluster=True).patch)
    assert requests_limits(out, 0) == ("1", "1")
    assert requests_limits(out, 1) == (None, None)


@pytest.mark.parametrize("where", ["requests", "limits"])
@pytest.mark.parametrize("container", ["containers", "initContainers"])
def test_a_pod_that_already_asks_is_unchanged(where: str, container: str) -> None:
    p = pod(ROUTE)
    p["spec"]["containers"].append({"name": "second", "image": "x"})
    p["spec"].setdefault(container, [{"name": "i", "image": "x"}])
    p["spec"][container][-1]["resources"] = {where: {RESOURCE_ENI_IP: "1"}}
    for eni_only in (True, False):
        d = decide.pod_decision(p, eni_only_cluster=eni_only)
        assert (d.outcome, d.patch) == (decide.ALREADY_REQUESTS, ())


def test_host_network_is_never_touched() -> None:
    for eni_only in (True, False):
        d = decide.pod_decision(pod(ROUTE, hostNetwork=True), eni_only_cluster=eni_only)
        assert (d.outcome, d.patch) == (decide.HOST_NETWORK, ())


def test_method_2_only_the_annotated_pods() -> None:
    assert decide.pod_decision(pod(), eni_only_cluster=False).outcome == decide.NO_ENI_IP
    assert decide.pod_decision(pod({ANNOTATION_NETWORKS: "other"}),
                               eni_only_cluster=False).outcome == decide.NO_ENI_IP
    assert decide.pod_decision(pod(ROUTE), eni_only_cluster=False).outcome == decide.PATCHED


@pytest.mark.parametrize("spec", [{}, {"containers": []}, {"containers": "x"},
                                  {"containers": [7]}])
def test_odd_specs_are_left_to_the_api_server(spec: dict[str, Any]) -> None:
    p = {"metadata": {}, "spec": spec}
    assert decide.pod_decision(p, eni_only_cluster=True) == decide.Decision(decide.NO_CONTAINERS)


def test_not_create_and_not_pods_are_unchanged() -> None:
    req = review.parse(review_body(pod(), operation="UPDATE"))
    assert decide.decide(req, eni_only_cluster=True).outcome == decide.NOT_CREATE
    req = review.parse(review_body({"metadata": {}}, kind="ConfigMap", resource="configmaps"))
    assert decide.decide(req, eni_only_cluster=True).outcome == decide.NOT_A_POD
    dep = {"metadata": {"name": "d"}, "spec": {"template": pod()}}
    req = review.parse(review_body(dep, kind="Deployment", group="apps", resource="deployments"))
    d = decide.decide(req, eni_only_cluster=True)
    assert (d.outcome, d.patch) == (decide.WORKLOAD, ())


# --- warnings --------------------------------------------------------------------------------

NEVER = {ANNOTATION_CLAIM_DELETE_POLICY: "Never"}
STS_OWNER = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True,
              "uid": "x"}]
RS_OWNER = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nginx-1",
             "controller": True, "uid": "x"}]


def _pod_req(annotations: dict[str, str], owners: Any = None, **spec: Any) -> review.Request:
    p = pod(annotations, **spec)
    if owners is not None:
        p["metadata"]["ownerReferences"] = owners
    return review.parse(review_body(p))


def test_never_outside_a_statefulset_warns() -> None:
    (w,) = warnings_for(_pod_req(NEVER, RS_OWNER), eni_only_cluster=True)
    assert "StatefulSet" in w and "ReplicaSet nginx-1" in w and "dynamic IP" in w
    assert warnings_for(_pod_req(NEVER), eni_only_cluster=True)  # a bare pod
    assert warnings_for(_pod_req(NEVER, STS_OWNER), eni_only_cluster=True) == []
    assert warnings_for(_pod_req({}, RS_OWNER), eni_only_cluster=True) == []


def test_bad_policy_and_bad_duration_warn() -> None:
    (w,) = warnings_for(_pod_req({ANNOTATION_CLAIM_DELETE_POLICY: "never"}, STS_OWNER),
                        eni_only_cluster=True)
    assert "is not one of" in w and "never" in w
    (w,) = warnings_for(_pod_req({**NEVER, ANNOTATION_CLAIM_EXPIRED_DURATION: "ten minutes"},
                                 STS_OWNER), eni_only_cluster=True)
    assert ANNOTATION_CLAIM_EXPIRED_DURATION in w and "ipamd default" in w
    assert warnings_for(_pod_req({**NEVER, ANNOTATION_CLAIM_EXPIRED_DURATION: "10m0s"},
                                 STS_OWNER), eni_only_cluster=True) == []


def test_no_warning_for_pods_without_an_eni_ip() -> None:
    assert warnings_for(_pod_req(NEVER, hostNetwork=True), eni_only_cluster=True) == []
    assert warnings_for(_pod_req(NEVER), eni_only_cluster=False) == []
    assert warnings_for(_pod_req({**NEVER, **ROUTE}), eni_only_cluster=False)


def test_workload_templates_warn_with_the_workload_as_controller() -> None:
    dep = {"metadata": {"name": "nginx"}, "spec": {"template": pod({**NEVER, **ROUTE})}}
    for op in ("CREATE", "UPDATE"):
        req = review.parse(review_body(dep, kind="Deployment", group="apps",
                                       resource="deployments", operation=op))
        (w,) = warnings_for(req, eni_only_cluster=False)
        assert w.startswith("tke-eni-ip-webhook: Deployment nginx pod template: ")
        assert "Deployment nginx" in w
    sts = {"metadata": {"name": "web"}, "spec": {"template": pod(NEVER)}}
    req = review.parse(review_body(sts, kind="StatefulSet", group="apps",
                                   resource="statefulsets"))
    assert warnings_for(req, eni_only_cluster=True) == []
    cron = {"metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": pod(NEVER)}}}}
    req = review.parse(review_body(cron, kind="CronJob", group="batch", resource="cronjobs"))
    assert len(warnings_for(req, eni_only_cluster=True)) == 1


# --- the wire ------------------------------------------------------------------------------


def test_response_echoes_uid_and_carries_a_base64_json_patch() -> None:
    req = review.parse(review_body(pod(), uid="abc-123"))
    d = decide.decide(req, eni_only_cluster=True)
    out = json.loads(review.encode(review.Response(uid=req.uid, patch=d.patch,
                                                   warnings=["w"])))
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    resp = out["response"]
    assert (resp["uid"], resp["allowed"], resp["patchType"]) == ("abc-123", True, "JSONPatch")
    assert json.loads(base64.b64decode(resp["patch"])) == list(d.patch)
    assert resp["warnings"] == ["w"]
    plain = json.loads(review.encode(review.Response(uid="x")))["response"]
    assert plain == {"uid": "x", "allowed": True}


GOOD = json.loads(review_body(pod()))


def _mut(path: str, value: Any) -> bytes:
    doc = copy.deepcopy(GOOD)
    node = doc
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("body", "uid", "says"), [
    (b"", "", "empty request body"),
    (b"{not json", "", "not JSON"),
    (b"\xff\xfe", "", "not JSON"),
    (b"[1, 2]", "", "expected a JSON object, got an array"),
    (b"null", "", "got null"),
    (b"[" * 100000 + b"]" * 100000, "", "not JSON"),
    (_mut("kind", "Review"), "u-1", "kind: expected 'AdmissionReview'"),
    (_mut("apiVersion", "admission.k8s.io/v1beta1"), "u-1", "admissionReviewVersions"),
    (_mut("request", KeyError), "", "request: expected an object, got null"),
    (_mut("request", "x"), "", "request: expected an object, got a string"),
    (_mut("request.uid", KeyError), "", "request.uid is missing"),
    (_mut("request.uid", 5), "", "request.uid is missing or not a string"),
    (_mut("request.operation", "PATCH"), "u-1", "request.operation: 'PATCH'"),
    (_mut("request.operation", KeyError), "u-1", "request.operation is missing"),
    (_mut("request.kind", "Pod"), "u-1", "request.kind: expected an object"),
    (_mut("request.kind.kind", KeyError), "u-1", "request.kind.kind is missing"),
    (_mut("request.kind.version", 1), "u-1", "request.kind.version: expected a string"),
    (_mut("request.resource", KeyError), "u-1", "request.resource: expected an object"),
    (_mut("request.object", KeyError), "u-1", "request.object: expected the CREATEd object"),
    (_mut("request.object", [1]), "u-1", "got an array"),
    (_mut("request.namespace", ["x"]), "u-1", "request.namespace: expected a string"),
    (_mut("request.dryRun", "yes"), "u-1", "request.dryRun: expected a boolean"),
])
def test_malformed_reviews_are_clear_errors(body: bytes, uid: str, says: str) -> None:
    with pytest.raises(review.ReviewError) as err:
        review.parse(body)
    assert says in str(err.value)
    assert err.value.uid == uid
    if uid:
        resp = json.loads(review.encode(review.error_response(err.value)))["response"]
        assert (resp["uid"], resp["allowed"], resp["status"]["code"]) == (uid, False, 400)
        assert says in resp["status"]["message"]


def test_odd_but_valid_objects_never_raise() -> None:
    """Any JSON object as the pod: decided (often "no containers"), never an exception."""
    for obj in ({}, {"spec": None}, {"spec": {"containers": None}}, {"metadata": "x"},
                {"metadata": {"annotations": {ANNOTATION_NETWORKS: 5}}, "spec": {}},
                {"spec": {"containers": [{"resources": "x"}]}},
                {"spec": {"containers": [{"resources": {"requests": [1]}}]}}):
        req = review.parse(review_body(obj))
        for eni_only in (True, False):
            d = decide.decide(req, eni_only_cluster=eni_only)
            assert d.outcome in decide.OUTCOMES
            warnings_for(req, eni_only_cluster=eni_only)
