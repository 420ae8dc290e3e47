"""HTTP endpoints: ``/metrics`` (Prometheus) on ``--metrics-address`` and
``/healthz`` / ``/readyz`` on ``--health-address``. Ready = caches synced and
either leading with the first reconcile done, or a synced standby."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ipamd.metrics import REGISTRY


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"invalid address {address!r}: expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(
    address: str, routes: dict[str, Callable[[], tuple[int, str, bytes]]]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(self.path.split("?", 1)[0])
            if route is None:
                code, ctype, body = 404, "text/plain", b"not found\n"
            else:
                code, ctype, body = route()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(split_address(address), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"http-{address}", daemon=True).start()
    return server


def metrics_route() -> tuple[int, str, bytes]:
    return 200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY)


def json_route(
    fn: Callable[[], tuple[bool, dict[str, object]]],
) -> Callable[[], tuple[int, str, bytes]]:
    def route() -> tuple[int, str, bytes]:
        ok, detail = fn()
        return (200 if ok else 503), "application/json", json.dumps(detail).encode() + b"\n"

    return route
