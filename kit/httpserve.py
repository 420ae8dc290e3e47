"""The daemons' plain-HTTP status server: ``/healthz`` (liveness), ``/readyz``
(readiness) and ``/metrics`` (Prometheus text of one or more registries).

A probe is a callable returning ``bool``, ``(bool, str)`` (the reason, sent as
text) or ``(bool, dict)`` (sent as JSON): 200 when true, 503 when false, 500
with the error when the probe itself raises. A route whose probe (or whose
registries) is not given answers 404, so one daemon can split metrics and
health over two addresses. Several registries are served one after the other
(they must not share metric names).

Exposed to the pod network, so bounded: one request per connection, a
deadline on the whole request (a client that dribbles its head is cut off
after ``read_timeout``), and at most ``max_connections`` at once (more are
closed at once, never queued)."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

ProbeResult = bool | tuple[bool, str] | tuple[bool, Mapping[str, object]]
Probe = Callable[[], ProbeResult]
Reply = tuple[int, str, bytes]


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; an empty host: all addresses) to a bind pair."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid address {address!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def probe_reply(probe: Probe) -> Reply:
    try:
        result = probe()
    except Exception as exc:
        log.exception("status probe failed")
        return 500, "text/plain", f"probe failed: {type(exc).__name__}: {exc}\n".encode()
    detail: str | Mapping[str, object]
    if isinstance(result, bool):
        ok, detail = result, ("ok" if result else "not ok")
    else:
        ok, detail = result
    code = 200 if ok else 503
    if not isinstance(detail, str):
        return code, "application/json", json.dumps(dict(detail), default=str).encode() + b"\n"
    return code, "text/plain", (detail + "\n").encode()


def metrics_reply(registries: Sequence[CollectorRegistry]) -> Reply:
    return 200, CONTENT_TYPE_LATEST, b"".join(generate_latest(r) for r in registries)


class StatusServer:
    """Binds at construction (an error here is the caller's start-up error);
    ``start()`` serves on a daemon thread, ``stop()`` ends it and closes the
    socket."""

    def __init__(
        self,
        address: str,
        *,
        registries: Sequence[CollectorRegistry] = (),
        healthy: Probe | None = None,
        ready: Probe | None = None,
        name: str = "status",
        read_timeout: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        routes: dict[str, Callable[[], Reply]] = {}
        if registries:
            regs = tuple(registries)
            routes["/metrics"] = lambda: metrics_reply(regs)
        if healthy is not None:
            routes["/healthz"] = lambda: probe_reply(healthy)
        if ready is not None:
            routes["/readyz"] = lambda: probe_reply(ready)
        self.routes = routes
        self._httpd = _Server(
            split_address(address), _handler(routes, read_timeout), max_connections
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.2,), name=f"http-{name}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout)
        self._httpd.server_close()


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max(1, max_connections))
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed, not queued
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _handler(
    routes: dict[str, Callable[[], Reply]], read_timeout: float
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout  # each read

        def setup(self) -> None:
            super().setup()
            # the whole request: a head dribbled byte by byte is cut off
            self._deadline = threading.Timer(read_timeout, _cut, (self.connection,))
            self._deadline.daemon = True
            self._deadline.start()

        def finish(self) -> None:
            self._deadline.cancel()
            with contextlib.suppress(OSError):
                super().finish()

        def do_GET(self) -> None:
            self._deadline.cancel()
            route = routes.get(self.path.split("?", 1)[0])
            code, ctype, body = route() if route else (404, "text/plain", b"not found\n")
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Handler
