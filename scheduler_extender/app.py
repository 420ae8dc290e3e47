"""The Flask app: the two verbs, health, readiness and metrics.

Each verb: read the body (bounded: 413 past --max-body-bytes) → parse (400 on
any bad input) → take one snapshot → decide → encode. Nothing here blocks on
the API server.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wsgi import get_content_length

from kit.logs import event

from . import decide, wire
from .config import Settings
from .front import JSON, Reply, VerbFront
from .metrics import Metrics
from .snapshot import Snapshot
from .store import Store

log = logging.getLogger("tke_eni_extender")
NOT_SYNCED = "tke-eni-ip-scheduler: caches not synced with the API server yet, retry"
Handler = Callable[[wire.ExtenderArgs, Snapshot], Reply]


class BodyTooLargeError(Exception):
    """The request body is over --max-body-bytes (HTTP 413)."""


def create_app(store: Store, settings: Settings, metrics: Metrics | None = None) -> Flask:
    """The extender's app: the filter and prioritize verbs, health, readiness, metrics.

    The verbs are answered by ``front.VerbFront`` ahead of Flask (the hot
    path); their Flask routes stay declared so other methods get Flask's 405."""
    app = Flask("scheduler_extender")
    verbs = _Verbs(store, settings, metrics or Metrics(store))
    app.extensions["tke_metrics"] = verbs.m
    app.extensions["tke_codec"] = verbs.codec

    def filter_verb(environ: dict[str, Any]) -> Reply:
        return verbs.run("filter", verbs.filter, environ)

    def prioritize_verb(environ: dict[str, Any]) -> Reply:
        return verbs.run("prioritize", verbs.prioritize, environ)

    for path, verb in ((settings.filter_path, filter_verb),
                       (settings.prioritize_path, prioritize_verb)):
        app.add_url_rule(path, verb.__name__, _flask_view(verb), methods=["POST"])
    app.wsgi_app = VerbFront(  # type: ignore[method-assign]
        app.wsgi_app, {settings.filter_path: filter_verb, settings.prioritize_path: prioritize_verb}
    )
    _health_routes(app, store, verbs.m)
    return app


def _flask_view(verb: Callable[[dict[str, Any]], Reply]) -> Callable[[], Response]:
    """The same verb as a Flask view (reached only when the front is bypassed)."""

    def view() -> Response:
        reply = verb(request.environ)
        response = Response(reply.body, reply.status, mimetype=JSON)
        if reply.after is not None:
            response.call_on_close(reply.after)
        return response

    return view


class _Verbs:
    """One verb call: bounded read → parse → one snapshot → decide → encode, counted."""

    def __init__(self, store: Store, settings: Settings, m: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.m = m
        self.codec = wire.Codec(settings.json_codec)

    def reply(self, payload: object, status: int) -> Reply:
        return Reply(status, self.codec.encode(payload))

    def run(self, name: str, handler: Handler, environ: dict[str, Any]) -> Reply:
        start = time.perf_counter()
        code = 200
        try:
            response = self._answer(name, handler, environ)
            code = response.status
            return response
        except BodyTooLargeError as exc:
            code = 413
            return self._too_large(name, exc, environ)
        except wire.BadRequestError as exc:
            code = 400
            event(log, logging.WARNING, "bad request", verb=name, error=str(exc))
            return self.reply(wire.error_result(f"bad request: {exc}"), 400)
        except Exception as exc:
            code = 500
            log.exception("internal error in %s", name)
            return self.reply(wire.error_result(f"internal error: {exc}"), 500)
        finally:
            self.m.requests.labels(name, str(code)).inc()
            self.m.latency.labels(name).observe(time.perf_counter() - start)

    def _answer(self, name: str, handler: Handler, environ: dict[str, Any]) -> Reply:
        args = self.codec.parse(_read_body(environ, self.settings.max_body_bytes))
        snap = self.store.snapshot()
        for kind in snap.stale:
            self.m.stale_answers.labels(name, kind).inc()
        return handler(args, snap)

    def _too_large(self, name: str, exc: BodyTooLargeError, environ: dict[str, Any]) -> Reply:
        event(log, logging.WARNING, "request body too large", verb=name, error=str(exc))
        # after the reply is written, read (and drop) what the client still sends,
        # up to a bound, so closing does not reset the connection under the reply
        stream = environ["wsgi.input"]
        limit = self.settings.max_body_bytes * 2
        body = self.codec.encode(wire.error_result(str(exc)))
        return Reply(413, body, lambda: _drain(stream, limit))

    def filter(self, args: wire.ExtenderArgs, snap: Snapshot) -> Reply:
        if not snap.synced:
            event(log, logging.WARNING, "filter before caches synced", pod=args.pod.key)
            return self.reply(wire.error_result(NOT_SYNCED), 200)
        nodes = args.nodes if args.nodes is not None else snap.nodes
        d = decide.filter_nodes(args.pod, args.names, nodes, snap)
        for (result, reason), count in d.codes.items():
            if count:
                self.m.decisions.labels(result, reason).inc(count)
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
        return self.reply(wire.filter_result(args, d.passed, d.failed, d.unresolvable), 200)

    def prioritize(self, args: wire.ExtenderArgs, snap: Snapshot) -> Reply:
        nodes = args.nodes if args.nodes is not None else snap.nodes
        scores = decide.prioritize(args.pod, args.names, nodes, snap)
        event(log, logging.DEBUG, "prioritize", pod=args.pod.key, scores=dict(scores[:20]))
        return Reply(200, self.codec.encode_priorities(scores))


def readiness(store: Store) -> tuple[bool, str]:
    """Ready once every kind has been listed (a stale kind is named, still ready)."""
    states = store.kind_states()
    waiting = sorted(k for k, s in states.items() if not s.synced)
    if waiting:
        return False, f"caches not synced: {', '.join(waiting)}"
    stale = store.stale_kinds()
    return True, "ok" + (f" (stale: {', '.join(stale)})" if stale else "")


def _health_routes(app: Flask, store: Store, m: Metrics) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", 200, mimetype="text/plain")

    @app.get("/readyz")
    def readyz() -> Response:
        ok, text = readiness(store)
        return Response(text + "\n", 200 if ok else 503, mimetype="text/plain")

    @app.get("/metrics")
    def metrics_page() -> Response:
        return Response(generate_latest(m.registry), 200, content_type=CONTENT_TYPE_LATEST)


def _drain(stream: Any, budget: int) -> None:
    """Read and drop up to ``budget`` bytes (the server's read timeout bounds
    each read); the connection is closed after a 413 anyway."""
    with contextlib.suppress(Exception):  # a reset, a timeout, the server's own cap
        while budget > 0:
            chunk = stream.read(min(budget, 1 << 20))
            if not chunk:
                return
            budget -= len(chunk)


def _too_large(what: str, limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"tke-eni-ip-scheduler: request body {what} exceeds the limit of {limit} bytes "
        "(--max-body-bytes; the shipped configuration sends node names only: "
        "nodeCacheCapable: true)"
    )


def _read_body(environ: dict[str, Any], limit: int) -> bytes | bytearray:
    """The body, bounded. A declared length over the limit is refused before a
    byte is read (the server closes the connection after a 413); a chunked body
    is read up to one byte past the limit. Read straight from ``wsgi.input``:
    one copy instead of werkzeug's chunked reads (a large body comes as the
    bytearray the server read it into: every codec takes bytes-like input)."""
    length = get_content_length(environ)
    if length is not None and length > limit:
        raise _too_large(f"of {length} bytes", limit)
    stream = environ["wsgi.input"]
    data: bytes | bytearray = stream.read(length if length is not None else limit + 1)
    if len(data) > limit:
        raise _too_large("(chunked)", limit)
    if not data:
        raise wire.BadRequestError("empty request body: expected ExtenderArgs JSON")
    return data
