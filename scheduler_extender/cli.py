"""``tke-eni-scheduler-extender``: CLI → settings → caches → servers.

Start-up order: log the effective settings, load the TLS files (exit 2 with
the reason when they are unusable), start the watches, serve at once (health
answers immediately; readiness and the verbs wait for the caches), stop on
SIGTERM/SIGINT: the servers close, watches stop, exit 0.

Two listeners (``tlsserve``): the verbs on ``--port`` over mutual TLS, and
``--health-port`` in plain HTTP with only /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from kit import logs
from kit.httpserve import StatusServer
from kit.settings import log_effective

from . import config
from .app import create_app, readiness
from .metrics import Metrics
from .store import Store
from .tlsserve import Listener, ServeOptions, TLSConfigError, TLSFiles, build_context
from .watch import Reflector, Watcher, kube_get, resources

log = logging.getLogger("tke_eni_extender")
#: seconds a verbs worker waits for its connection's next request (tlsserve)
KEEPALIVE_LINGER = 0.05


def tls_files(settings: config.Settings) -> TLSFiles | None:
    """The serving certificate, key and client CA; None with --insecure-http."""
    if settings.insecure_http:
        return None
    return TLSFiles(
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.client_ca_file,
        cert_label="--tls-cert-file",
        key_label="--tls-key-file",
        client_ca_label="--client-ca-file",
        require_client_cert=True,
    )


def client_name_check(settings: config.Settings) -> Callable[[dict[str, Any]], str | None] | None:
    """With --client-names: the client certificate's CN or a DNS SAN must be one of them."""
    allowed = {n.strip() for n in settings.client_names.split(",") if n.strip()}
    if not allowed:
        return None

    def check(cert: dict[str, Any]) -> str | None:
        names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        names += [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
        if allowed.intersection(names):
            return None
        return f"client certificate names {names} not in --client-names {sorted(allowed)}"

    return check


def event_sink(metrics: Metrics | None) -> Callable[[str, dict[str, Any]], None]:
    """The TLS server's events → logs and metrics."""

    def sink(kind: str, fields: dict[str, Any]) -> None:
        level = logging.INFO if fields.get("result") == "ok" else logging.WARNING
        logs.event(log, level, kind, **fields)
        if metrics is None:
            return
        if kind == "connection refused":
            metrics.tls_refused.inc()
        elif "result" in fields:
            metrics.tls_reloads.labels(fields["result"]).inc()

    return sink


def verbs_listener(app: Any, settings: config.Settings, metrics: Metrics | None = None) -> Listener:
    """The verbs' server (bound, not serving yet): mutual TLS unless --insecure-http.
    Raises TLSConfigError for unusable certificate files, OSError when it cannot bind."""
    opts = ServeOptions(
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        read_timeout=settings.read_timeout,
        # no cap of cheroot's own: the app answers every oversized body with its 413
        # message (it reads at most the cap + 1, then drains at most twice the cap)
        max_body_bytes=0,
        queue_size=settings.threads * 16,
        server_name="tke-eni-ip-scheduler",
        # kube-scheduler posts filter, then prioritize, then the next pod's filter on
        # one kept-alive connection: the worker that answered waits for the next call
        keepalive_linger=KEEPALIVE_LINGER,
    )
    return Listener(
        app,
        opts,
        tls_files(settings),
        log=logging.getLogger("tke_eni_extender.server"),
        on_event=event_sink(metrics),
        authorize=client_name_check(settings),
    )


def health_listener(
    store: Store, metrics: Metrics, settings: config.Settings
) -> StatusServer | None:
    """Plain HTTP, health and metrics only (probes and Prometheus have no client
    certificate): the kit's status server, its own threads, so it never
    competes with the verbs."""
    if settings.health_port < 0:
        return None
    return StatusServer(
        f"{settings.host}:{settings.health_port}",
        registries=[metrics.registry],
        healthy=lambda: True,
        ready=lambda: readiness(store),
        name="extender-health",
        read_timeout=settings.read_timeout,
    )


class ServerThread:
    """The verbs' server on a background thread (tests, benchmarks)."""

    def __init__(self, app: Any, settings: config.Settings) -> None:
        metrics = app.extensions.get("tke_metrics") if hasattr(app, "extensions") else None
        self.listener = verbs_listener(app, settings, metrics).start()
        self.port: int = self.listener.port

    @property
    def url(self) -> str:
        return self.listener.url

    def stop(self) -> None:
        self.listener.stop()


def build(settings: config.Settings) -> tuple[Store, Watcher]:
    store = Store(
        config_map=settings.configmap_name,
        status_map=settings.status_configmap_name,
        status_key=settings.status_key,
        stale_after=settings.stale_after,
    )
    get = kube_get(settings.kubeconfig)
    names = (settings.configmap_name, settings.status_configmap_name)
    reflectors = [
        Reflector(
            store,
            get,
            res,
            page_size=settings.list_page_size,
            watch_timeout=settings.watch_timeout,
        )
        for res in resources(settings.configmap_namespace, names)
    ]
    return store, Watcher(reflectors)


def freeze_after_sync(store: Store, stop: threading.Event) -> threading.Thread:
    """Once the caches are loaded, move every object to the GC's permanent
    generation: the cache is long-lived, and a full collection over ~100k
    cached objects would otherwise land in some request's latency."""

    def run() -> None:
        while not stop.wait(0.5):
            if store.synced():
                gc.collect()
                gc.freeze()
                logs.event(log, logging.INFO, "caches synced", frozen_objects=gc.get_freeze_count())
                return

    thread = threading.Thread(target=run, name="gc-freeze", daemon=True)
    thread.start()
    return thread


class StartError(Exception):
    """Start-up failed; ``code`` is the exit status (2: settings, 1: environment)."""

    def __init__(self, code: int, what: str, **fields: Any) -> None:
        super().__init__(what)
        self.code = code
        self.fields = fields


def check_tls(settings: config.Settings) -> None:
    """Unusable certificate files stop the start before anything runs (exit 2)."""
    files = tls_files(settings)
    if files is None:
        logs.event(log, logging.WARNING, "--insecure-http: the verbs are served over plain "
                   "HTTP to any client (local debugging only)")
        return
    try:
        build_context(files)
    except TLSConfigError as exc:
        raise StartError(2, "cannot serve TLS", error=str(exc)) from exc


def listeners(
    settings: config.Settings, store: Store
) -> tuple[Listener, StatusServer | None]:
    try:
        metrics = Metrics(store)
        app = create_app(store, settings, metrics)
    except ValueError as exc:  # e.g. --json-codec msgspec without msgspec
        raise StartError(2, "bad settings", error=str(exc)) from exc
    try:
        server = verbs_listener(app, settings, metrics)
    except TLSConfigError as exc:
        raise StartError(2, "cannot serve TLS", error=str(exc)) from exc
    except OSError as exc:
        raise StartError(1, "cannot listen", port=settings.port, error=str(exc)) from exc
    try:
        health = health_listener(store, metrics, settings)
    except OSError as exc:
        server.stop()
        raise StartError(1, "cannot listen", port=settings.health_port, error=str(exc)) from exc
    return server, health


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.parse(argv)
    # cheroot's per-connection notes (a client that went away) are not worth a line
    logs.setup(settings.log_level, settings.log_format,
               quiet=("tke_eni_extender.server", "tke_eni_extender.health"))
    log_effective(log, "tke-eni-ip-scheduler", settings)
    try:
        check_tls(settings)
        try:
            store, watcher = build(settings)
        except Exception as exc:  # process boundary: any failure is reported
            raise StartError(1, "cannot reach the Kubernetes API", error=str(exc)) from exc
        server, health = listeners(settings, store)
    except StartError as exc:
        logs.event(log, logging.ERROR, str(exc), **exc.fields)
        return exc.code

    def stop(signum: int, _frame: FrameType | None) -> None:
        logs.event(log, logging.INFO, "stopping", signal=signal.Signals(signum).name)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_freeze = threading.Event()
    try:  # a signal from here on ends in the finally below (the ports are bound already)
        watcher.start()
        freeze_after_sync(store, stop_freeze)
        if health is not None:
            health.start()
        logs.event(
            log,
            logging.INFO,
            "serving",
            address=f"{settings.host}:{server.port}",
            scheme=server.scheme,
            client_certificate="required" if server.scheme == "https" else "none",
            health_address=f"{settings.host}:{health.port}" if health is not None else None,
            filter=settings.filter_path,
            prioritize=settings.prioritize_path,
        )
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        stop_freeze.set()
        server.stop()
        if health is not None:
            health.stop()
        watcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
