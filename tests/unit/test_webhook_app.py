"""The webhook's Flask app (HTTP in, AdmissionReview out; metrics), its settings
and the certificate helpers (webhook.pki)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.names import ANNOTATION_CLAIM_DELETE_POLICY, RESOURCE_ENI_IP
from tests.webhook_support import pod, review_body
from webhook import config, pki, provision_config
from webhook.app import create_app
from webhook.metrics import Metrics


def settings(**kw: Any) -> config.Settings:
    return config.Settings(insecure_http=True, eni_only=True, **kw)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def http(metrics: Metrics) -> FlaskClient:
    return create_app(settings(max_body_bytes=64 * 1024), metrics).test_client()


def post(http: FlaskClient, body: bytes, **kw: Any) -> tuple[int, dict[str, Any]]:
    kw.setdefault("content_type", "application/json")
    r = http.post("/mutate", data=body, **kw)
    return r.status_code, json.loads(r.data)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return float(value or 0.0)


def test_a_pod_is_patched_and_counted(http: FlaskClient, metrics: Metrics) -> None:
    code, out = post(http, review_body(pod(), uid="uid-7"))
    assert code == 200
    resp = out["response"]
    assert (resp["uid"], resp["allowed"], resp["patchType"]) == ("uid-7", True, "JSONPatch")
    patch = json.loads(base64.b64decode(resp["patch"]))
    assert patch == [{"op": "add", "path": "/spec/containers/0/resources",
                      "value": {"requests": {RESOURCE_ENI_IP: "1"},
                                "limits": {RESOURCE_ENI_IP: "1"}}}]
    assert sample(metrics, "tke_eni_webhook_admissions_total", outcome="patched") == 1
    assert sample(metrics, "tke_eni_webhook_admission_duration_seconds_count") == 1


def test_warnings_reach_the_response(http: FlaskClient, metrics: Metrics) -> None:
    _, out = post(http, review_body(pod({ANNOTATION_CLAIM_DELETE_POLICY: "Never"})))
    (w,) = out["response"]["warnings"]
    assert "StatefulSet" in w
    assert sample(metrics, "tke_eni_webhook_warnings_total") == 1


def test_malformed_with_a_uid_is_refused_in_an_admission_review(
        http: FlaskClient, metrics: Metrics) -> None:
    doc = json.loads(review_body(pod(), uid="u-9"))
    doc["request"]["operation"] = 12
    code, out = post(http, json.dumps(doc).encode())
    assert code == 200
    resp = out["response"]
    assert (resp["uid"], resp["allowed"], resp["status"]["code"]) == ("u-9", False, 400)
    assert "request.operation: expected a string" in resp["status"]["message"]
    assert sample(metrics, "tke_eni_webhook_admissions_total", outcome="malformed") == 1


@pytest.mark.parametrize(("body", "ctype", "code", "says"), [
    (b"", "application/json", 400, "empty request body"),
    (b"{", "application/json", 400, "not JSON"),
    (b"[]", "application/json", 400, "expected a JSON object"),
    (b"{}", "text/plain", 415, "Content-Type 'text/plain'"),
    (b"x" * (64 * 1024 + 1), "application/json", 413, "exceeds the limit of 65536 bytes"),
])
def test_unreadable_bodies_get_http_errors_with_a_message(
        http: FlaskClient, metrics: Metrics, body: bytes, ctype: str, code: int,
        says: str) -> None:
    got, out = post(http, body, content_type=ctype)
    assert got == code
    assert out["response"]["allowed"] is False and says in out["response"]["status"]["message"]
    assert sample(metrics, "tke_eni_webhook_http_errors_total", code=str(code)) == 1


def test_wrong_path_and_method(http: FlaskClient) -> None:
    r = http.post("/nope", data=b"{}")
    assert r.status_code == 404 and "/mutate" in r.get_json()["error"]
    r = http.get("/mutate")
    assert r.status_code == 405 and "POSTs AdmissionReviews" in r.get_json()["error"]


def test_health_app_has_no_admission_endpoint(metrics: Metrics) -> None:
    health = create_app(settings(), metrics, admission=False).test_client()
    assert health.get("/healthz").status_code == 200
    assert health.get("/readyz").status_code == 200
    assert b"tke_eni_webhook_admissions_total" in health.get("/metrics").data
    assert health.post("/mutate", data=review_body(pod())).status_code == 404


# --- settings --------------------------------------------------------------------------------


def test_flag_beats_env_beats_default() -> None:
    tls = ["--tls-cert-file", "c", "--tls-key-file", "k"]
    assert config.parse(tls, env={}).eni_only is False
    assert config.parse(tls, env={"TKE_WEBHOOK_ENI_ONLY": "true"}).eni_only is True
    got = config.parse([*tls, "--no-eni-only", "--port", "9"], env={"TKE_WEBHOOK_ENI_ONLY": "1",
                                                                  "TKE_WEBHOOK_PORT": "7"})
    assert (got.eni_only, got.port) == (False, 9)
    assert config.parse([*tls, "--mutate-path", "m"], env={}).mutate_path == "/m"


@pytest.mark.parametrize(("argv", "env", "says"), [
    ([], {}, "are required: the API server calls admission webhooks over HTTPS only"),
    (["--insecure-http", "--tls-cert-file", "c"], {}, "choose one"),
    (["--insecure-http", "--log-format", "xml"], {}, "--log-format"),
    (["--insecure-http", "--threads", "0"], {}, "must be positive"),
    (["--insecure-http", "--port", "5", "--health-port", "5"], {}, "must differ"),
    (["--insecure-http"], {"TKE_WEBHOOK_PORT": "x"}, "TKE_WEBHOOK_PORT: invalid value 'x'"),
])
def test_bad_settings_exit_with_a_reason(argv: list[str], env: dict[str, str], says: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        config.parse(argv, env=env)
    assert exc.value.code == 2
    assert says in capsys.readouterr().err


def test_certs_settings_names_and_checks(capsys: pytest.CaptureFixture[str]) -> None:
    s = provision_config.parse(["--namespace", "ns", "--extra-names", "127.0.0.1, a.b"], env={})
    assert s.names() == ["tke-eni-ip-webhook.ns.svc", "tke-eni-ip-webhook",
                         "tke-eni-ip-webhook.ns", "tke-eni-ip-webhook.ns.svc.cluster.local",
                         "127.0.0.1", "a.b"]
    for argv, says in ((["--validity", "1h", "--renew-before", "2h"], "longer than"),
                       (["--validity", "ten"], "--validity"),
                       (["--namespace", ""], "must not be empty")):
        with pytest.raises(SystemExit):
            provision_config.parse(argv, env={})
        assert says in capsys.readouterr().err


# --- pki -------------------------------------------------------------------------------------


def test_issued_certificate_names_and_validity() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    b = pki.issue(["svc.ns.svc", "127.0.0.1", "svc.ns.svc"], validity=dt.timedelta(days=10),
                  ca_validity=dt.timedelta(days=100), now=now)
    info = pki.inspect(b.cert)
    assert info.dns_names == {"svc.ns.svc"} and info.ips == {"127.0.0.1"}
    assert info.not_after == now + dt.timedelta(days=10)
    pki.check_pair(b)
    names = ["svc.ns.svc", "127.0.0.1"]
    assert pki.renewal_reason(b, names, renew_before=dt.timedelta(days=1), now=now) == ""
    assert "within" in pki.renewal_reason(b, names, renew_before=dt.timedelta(days=11), now=now)
    assert "does not name x" in pki.renewal_reason(b, ["x"], renew_before=dt.timedelta(0),
                                                   now=now)
    other = pki.issue(["o"], validity=dt.timedelta(days=1), ca_validity=dt.timedelta(days=2))
    assert "does not match" in pki.renewal_reason(pki.Bundle(b.cert, other.key, b.ca), names,
                                                  renew_before=dt.timedelta(0), now=now)
    assert "not signed by" in pki.renewal_reason(pki.Bundle(b.cert, b.key, other.ca), names,
                                                 renew_before=dt.timedelta(0), now=now)
    assert "unreadable" in pki.renewal_reason(pki.Bundle(b"x", b.key, b.ca), names,
                                              renew_before=dt.timedelta(0), now=now)
    assert pki.certificates(b.ca + b"garbage" + other.ca) == [] or \
        len(pki.certificates(b.ca + other.ca)) == 2
    with pytest.raises(pki.PkiError):
        pki.issue([" "], validity=dt.timedelta(days=1), ca_validity=dt.timedelta(days=1))
