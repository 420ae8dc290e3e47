"""The Flask app: the two verbs, health, readiness and metrics.

Each verb: read the body (bounded) → parse (400 on any bad input) → take one
snapshot → decide → encode. Nothing here blocks on the API server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask, Request, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import decide, wire
from .config import Settings
from .logs import event
from .metrics import Metrics
from .snapshot import Snapshot
from .store import Store

log = logging.getLogger("tke_eni_extender")
JSON = "application/json"
NOT_SYNCED = "tke-eni-ip-scheduler: caches not synced with the API server yet, retry"


def create_app(store: Store, settings: Settings, metrics: Metrics | None = None) -> Flask:
    app = Flask("scheduler_extender")
    m = metrics or Metrics(store)
    codec = wire.Codec(settings.json_codec)
    app.extensions["tke_metrics"] = m
    app.extensions["tke_codec"] = codec

    def reply(payload: object, status: int) -> Response:
        return Response(codec.encode(payload), status, mimetype=JSON)

    def verb(name: str, handler: Callable[[wire.ExtenderArgs, Snapshot], Response]) -> Response:
        start = time.perf_counter()
        code = 200
        try:
            args = codec.parse(_read_body(request, settings.max_body_bytes))
            snap = store.snapshot()
            for kind in snap.stale:
                m.stale_answers.labels(name, kind).inc()
            response = handler(args, snap)
            code = response.status_code
            return response
        except wire.BadRequestError as exc:
            code = 400
            event(log, logging.WARNING, "bad request", verb=name, error=str(exc))
            return reply(wire.error_result(f"bad request: {exc}"), 400)
        except Exception as exc:
            code = 500
            log.exception("internal error in %s", name)
            return reply(wire.error_result(f"internal error: {exc}"), 500)
        finally:
            m.requests.labels(name, str(code)).inc()
            m.latency.labels(name).observe(time.perf_counter() - start)

    def do_filter(args: wire.ExtenderArgs, snap: Snapshot) -> Response:
        if not snap.synced:
            event(log, logging.WARNING, "filter before caches synced", pod=args.pod.key)
            return reply(wire.error_result(NOT_SYNCED), 200)
        nodes = args.nodes if args.nodes is not None else snap.nodes
        d = decide.filter_nodes(args.pod, args.names, nodes, snap)
        for (result, reason), count in d.codes.items():
            if count:
                m.decisions.labels(result, reason).inc(count)
        event(
            log,
            logging.INFO,
            "filter",
            pod=args.pod.key,
            pod_uid=args.pod.uid,
            eni_ip=args.pod.eni_ips,
            static_ip=d.static_ip or None,
            mode="NodeNames" if args.cache_mode else "Nodes",
            candidates=len(args.names),
            passed=len(d.passed),
            reasons={code: n for (res, code), n in d.codes.items() if res != decide.RESULT_PASSED},
            messages=dict(list(d.messages.items())[:8]),
            generation=snap.generation,
            stale=list(snap.stale) or None,
        )
        return reply(wire.filter_result(args, d.passed, d.failed, d.unresolvable), 200)

    def do_prioritize(args: wire.ExtenderArgs, snap: Snapshot) -> Response:
        nodes = args.nodes if args.nodes is not None else snap.nodes
        scores = decide.prioritize(args.pod, args.names, nodes, snap)
        event(log, logging.DEBUG, "prioritize", pod=args.pod.key, scores=dict(scores[:20]))
        return reply(wire.priority_list(scores), 200)

    @app.post(settings.filter_path)
    def filter_verb() -> Response:
        return verb("filter", do_filter)

    @app.post(settings.prioritize_path)
    def prioritize_verb() -> Response:
        return verb("prioritize", do_prioritize)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", 200, mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        states = store.kind_states()
        waiting = sorted(k for k, s in states.items() if not s.synced)
        if waiting:
            text = f"caches not synced: {', '.join(waiting)}\n"
            return Response(text, 503, mimetype="text/plain")
        stale = store.stale_kinds()
        note = f" (stale: {', '.join(stale)})" if stale else ""
        return Response(f"ok{note}\n", 200, mimetype="text/plain")

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(m.registry), 200, content_type=CONTENT_TYPE_LATEST)

    return app


def _read_body(req: Request, limit: int) -> bytes:
    """The body, bounded. Read straight from ``wsgi.input`` (waitress has
    buffered it whole): one copy instead of werkzeug's chunked reads, which
    cost ~20 ms for a 14 MB Nodes body."""
    length = req.content_length
    if length is not None and length > limit:
        raise wire.BadRequestError(
            f"request body of {length} bytes exceeds the limit of {limit} bytes (--max-body-bytes)"
        )
    stream = req.environ["wsgi.input"]
    data: bytes = stream.read(length if length is not None else limit + 1)
    if len(data) > limit:
        raise wire.BadRequestError(
            f"request body exceeds the limit of {limit} bytes (--max-body-bytes)"
        )
    if not data:
        raise wire.BadRequestError("empty request body: expected ExtenderArgs JSON")
    return data
