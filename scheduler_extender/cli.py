"""``tke-eni-scheduler-extender``: CLI → settings → caches → waitress.

Start-up order: log the effective settings, start the watches, serve at once
(health answers immediately; readiness and the verbs wait for the caches),
stop on SIGTERM/SIGINT: the server closes, watches stop, exit 0.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from . import config, logs
from .app import create_app
from .store import Store
from .watch import Reflector, Watcher, kube_get, resources

log = logging.getLogger("tke_eni_extender")


def make_server(app: Any, settings: config.Settings) -> Any:
    """A waitress server (not started). Its own body limit sits above ours so
    an oversized body gets the extender's HTTP 400, not waitress's 413."""
    from waitress.server import create_server

    return create_server(
        app,
        host=settings.host,
        port=settings.port,
        threads=settings.threads,
        max_request_body_size=max(settings.max_body_bytes * 2, 1 << 30),
        # keep request and reply bodies in memory (waitress spools past 1 MB)
        inbuf_overflow=settings.max_body_bytes + 1,
        outbuf_overflow=settings.max_body_bytes + 1,
        recv_bytes=256 * 1024,
        ident="tke-eni-ip-scheduler",
        clear_untrusted_proxy_headers=True,
    )


class ServerThread:
    """The server on a background thread (tests, benchmarks). The loop runs
    here in short polls so ``stop`` can end it from its own thread: workers
    are drained first, then every channel is closed once, by the loop thread."""

    def __init__(self, app: Any, settings: config.Settings) -> None:
        self.server = make_server(app, settings)
        self.port: int = self.server.effective_port
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        server = self.server
        socket_map = server._map  # waitress has no stop API
        while not self._stopping.is_set():
            server.asyncore.loop(timeout=0.05, map=socket_map, count=1)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        for channel in list(socket_map.values()):
            with contextlib.suppress(OSError):
                channel.close()
        socket_map.clear()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(15)


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


def main(argv: Sequence[str] | None = None) -> int:
    settings = config.parse(argv)
    logs.setup(settings.log_level, settings.log_format)
    logs.event(log, logging.INFO, "starting tke-eni-ip-scheduler", config=settings.effective())
    try:
        store, watcher = build(settings)
    except Exception as exc:  # noqa: BLE001 (process boundary)
        logs.event(log, logging.ERROR, "cannot reach the Kubernetes API", error=str(exc))
        return 1
    try:
        app = create_app(store, settings)
    except ValueError as exc:  # e.g. --json-codec msgspec without msgspec
        logs.event(log, logging.ERROR, "bad settings", error=str(exc))
        return 2
    server = make_server(app, settings)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logs.event(log, logging.INFO, "stopping", signal=signal.Signals(signum).name)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher.start()
    stop_freeze = threading.Event()
    freeze_after_sync(store, stop_freeze)
    logs.event(
        log,
        logging.INFO,
        "serving",
        address=f"{settings.host}:{server.effective_port}",
        filter=settings.filter_path,
        prioritize=settings.prioritize_path,
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop_freeze.set()
        server.close()
        watcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
