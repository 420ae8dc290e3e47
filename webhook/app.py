"""The Flask app: the admission endpoint, health, readiness and metrics.

The endpoint: read the body (bounded: 413 past --max-body-bytes) → parse the
AdmissionReview → decide (pure) + warnings → encode. It never calls the API
server and keeps no state, so any replica answers any request. Every answer
to a readable request is an AdmissionReview with the request's uid: a
malformed one gets ``allowed: false`` and a message naming the field; a body
without a readable uid gets HTTP 400 with the same message. ``admission=False``
gives the health/metrics-only app of the plain-HTTP health port.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Flask, Request, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kit.logs import event

from . import decide, review
from .config import Settings
from .metrics import Metrics
from .warnings import warnings_for

log = logging.getLogger("tke_eni_webhook")
JSON = "application/json"


class HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _read_body(req: Request, limit: int) -> bytes:
    ctype = (req.mimetype or "").lower()
    if ctype and ctype != JSON and not ctype.endswith("+json"):
        raise HttpError(415, f"Content-Type {req.mimetype!r}: expected {JSON} "
                             "(an AdmissionReview)")
    length = req.content_length
    if length is not None and length > limit:
        raise HttpError(413, f"request body of {length} bytes exceeds the limit of {limit} "
                             "bytes (--max-body-bytes)")
    data: bytes = req.environ["wsgi.input"].read(length if length is not None else limit + 1)
    if len(data) > limit:
        raise HttpError(413, f"request body exceeds the limit of {limit} bytes "
                             "(--max-body-bytes)")
    return data


def _error_body(message: str) -> bytes:
    """An AdmissionReview-shaped error without a uid (the request had none we could read)."""
    return review.encode(review.Response(uid="", allowed=False, code=400,
                                         message=f"tke-eni-ip-webhook: {message}"))


def admit(body: bytes, settings: Settings, m: Metrics) -> tuple[bytes, int, str]:
    """(answer, HTTP status, outcome) for one AdmissionReview body."""
    try:
        req = review.parse(body)
    except review.ReviewError as exc:
        event(log, logging.WARNING, "malformed AdmissionReview", uid=exc.uid, error=str(exc))
        if exc.uid:
            return review.encode(review.error_response(exc)), 200, decide.MALFORMED
        m.http_errors.labels("400").inc()
        return _error_body(f"malformed AdmissionReview: {exc}"), 400, decide.MALFORMED
    verdict = decide.decide(req, eni_only_cluster=settings.eni_only)
    warns = warnings_for(req, eni_only_cluster=settings.eni_only)
    if warns:
        m.warnings.inc(len(warns))
    answer = review.Response(uid=req.uid, patch=verdict.patch, warnings=warns)
    level = logging.INFO if verdict.patch or warns else logging.DEBUG
    event(log, level, "admitted", uid=req.uid, kind=req.kind.kind, namespace=req.namespace,
          name=req.name or _name_of(req.obj), operation=req.operation,
          outcome=verdict.outcome, dry_run=req.dry_run, warnings=warns or None)
    return review.encode(answer), 200, verdict.outcome


def _name_of(obj: object) -> str:
    """metadata.name, else generateName (a ReplicaSet's pods have no name yet)."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(meta, dict):
        return ""
    return str(meta.get("name") or meta.get("generateName") or "")


def create_app(settings: Settings, metrics: Metrics | None = None, *,
               admission: bool = True) -> Flask:
    app = Flask("webhook")
    m = metrics or Metrics()
    app.extensions["tke_metrics"] = m
    if admission:
        app.add_url_rule(settings.mutate_path, "mutate", lambda: mutate(settings, m),
                         methods=["POST"])
    _health_routes(app, m)
    _error_handlers(app, settings)
    return app


def mutate(settings: Settings, m: Metrics) -> Response:
    """One admission call: bounded read, admit, count; never raises."""
    started = time.perf_counter()
    outcome = decide.MALFORMED
    try:
        body = _read_body(request, settings.max_body_bytes)
        data, code, outcome = admit(body, settings, m)
    except HttpError as exc:
        event(log, logging.WARNING, "refused", code=exc.code, error=str(exc))
        m.http_errors.labels(str(exc.code)).inc()
        data, code = _error_body(str(exc)), exc.code
    except Exception as exc:
        log.exception("admission failed")
        data, code = _error_body(f"internal error: {type(exc).__name__}: {exc}"), 500
        m.http_errors.labels("500").inc()
    m.admissions.labels(outcome).inc()
    m.latency.observe(time.perf_counter() - started)
    return Response(data, code, content_type=JSON)


def _health_routes(app: Flask, m: Metrics) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", 200, mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        # stateless: ready as soon as it serves (the TLS files were loaded at start)
        return Response("ok\n", 200, mimetype="text/plain")

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(m.registry), 200, content_type=CONTENT_TYPE_LATEST)


def _error_handlers(app: Flask, settings: Settings) -> None:
    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return Response(json.dumps({"error": f"no such path {request.path!r}; the admission "
                                    f"endpoint is {settings.mutate_path}"}), 404,
                        content_type=JSON)

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> Response:
        return Response(json.dumps({"error": f"{request.method} not allowed on "
                                    f"{request.path}: the API server POSTs AdmissionReviews"}),
                        405, content_type=JSON)
