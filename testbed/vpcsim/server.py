"""The emulator's HTTP server (stdlib ThreadingHTTPServer on loopback), plain
or, given an ``ssl.SSLContext`` (see ``vpcsim.tls``), HTTPS.

- ``POST /``: the VPC and CVM API v3 (``api.Api``)
- ``GET /meta/<instance-id>/latest/meta-data/<path>``: the metadata service
- ``GET /latest/meta-data/<path>``: the metadata service of the instance whose private
  IP the request comes from (as on a CVM: no instance id in the URL)
- ``/_admin/...``: state dump, faults, instances, subnets (``admin.Admin``); not on a
  VPC-side listener (``make_server(..., vpc_side=True)``: the cloud's control API is
  not reachable from inside the VPC)
- ``GET /healthz``
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vpcsim import nsenter, tasks
from vpcsim.admin import Admin
from vpcsim.api import Api, Credential
from vpcsim.faults import Faults
from vpcsim.metadata import Metadata
from vpcsim.world import World

log = logging.getLogger(__name__)
MAX_BODY = 4 * 1024 * 1024
META_PREFIX = "/meta/"
META_MIDDLE = "/latest/meta-data/"
HANDSHAKE_TIMEOUT_S = 10.0


class Emulator:
    """Everything the server serves; usable without HTTP in unit tests."""

    def __init__(
        self,
        world: World,
        *,
        secret_id: str,
        secret_key: str,
        faults: Faults | None = None,
        persist: Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.world = world
        self.faults = faults or Faults()
        self.secret_id = secret_id
        self.credentials: dict[str, Credential] = {secret_id: Credential(secret_key)}
        self.persist = persist
        self._save_lock = threading.Lock()
        self.api = Api(
            world, self.faults, self.credentials, seed=seed, on_write=self.save if persist else None
        )
        self.metadata = Metadata(world, self.credentials)
        self.admin = Admin(self)

    def dump(self) -> dict[str, Any]:
        with self.world.lock:
            tasks.advance(self.world)
            return self.world.to_dict()

    def save(self) -> None:
        if self.persist is None:
            return
        with self._save_lock:
            data = self.dump()
            tmp = self.persist.with_suffix(self.persist.suffix + ".tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
            tmp.replace(self.persist)


class _Handler(BaseHTTPRequestHandler):
    server_version = "tke-vpcsim/0.1"
    protocol_version = "HTTP/1.1"
    emulator: Emulator  # set on the subclass built by make_server
    vpc_side = False  # set on the subclass built by make_server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._send(413 if length > MAX_BODY else 400, b'{"error": "bad Content-Length"}')
            return None
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        path = self.path.split("?")[0]
        if path == "/":
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out = self.emulator.api.handle(headers, body)
            self._send(status, out)
            return
        if path.startswith("/_admin/") and not self.vpc_side:
            status, out = self.emulator.admin.post(path, body)
            self._send(status, out)
            return
        self._send(404, b'{"error": "not found"}')

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._send(200, b"ok", "text/plain")
            return
        if path.startswith(META_PREFIX):
            instance_id, sep, rest = path[len(META_PREFIX) :].partition(META_MIDDLE)
            if not sep and path.endswith(META_MIDDLE.rstrip("/")):
                instance_id, sep, rest = path[len(META_PREFIX) : -len("/latest/meta-data")], "/", ""
            text = self.emulator.metadata.get(instance_id, rest) if sep else None
            if text is None:
                self._send(404, b"Not Found", "text/plain")
            else:
                self._send(200, text.encode(), "text/plain")
            return
        if path == META_MIDDLE.rstrip("/") or path.startswith(META_MIDDLE):
            self._metadata_of_caller(path[len(META_MIDDLE):])
            return
        if path.startswith("/_admin/") and not self.vpc_side:
            status, out = self.emulator.admin.get(path)
            self._send(status, out)
            return
        self._send(404, b'{"error": "not found"}')

    def _metadata_of_caller(self, rest: str) -> None:
        caller = str(self.client_address[0])
        instance_id = self.emulator.metadata.instance_at(caller)
        if instance_id is None:
            self._send(404, f"no instance has the private IP {caller}".encode(), "text/plain")
            return
        text = self.emulator.metadata.get(instance_id, rest)
        if text is None:
            self._send(404, b"Not Found", "text/plain")
        else:
            self._send(200, text.encode(), "text/plain")

    def do_DELETE(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith("/_admin/") and not self.vpc_side:
            status, out = self.emulator.admin.delete(path)
            self._send(status, out)
            return
        self._send(404, b'{"error": "not found"}')


class _TlsHandler(_Handler):
    """The same handler behind TLS: the handshake runs in the connection's own
    thread (bounded), so a client that connects and stays silent blocks nobody."""

    def handle(self) -> None:
        conn = self.connection
        assert isinstance(conn, ssl.SSLSocket)
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.address_string(), exc)
            self.close_connection = True
            return
        conn.settimeout(None)
        super().handle()


def make_server(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    *,
    netns: str = "",
) -> ThreadingHTTPServer:
    """The server, bound and not yet serving; HTTPS when ``tls`` is given. With
    ``netns`` (a network namespace file, e.g. ``/run/netns/x``) the listening socket
    is made in that namespace: a VPC-side listener, without the admin API. Call it
    before any thread starts (the namespace is entered by the calling thread)."""
    base = _Handler if tls is None else _TlsHandler
    handler = type("EmulatorHandler", (base,), {"emulator": emulator, "vpc_side": bool(netns)})
    if netns:
        with nsenter.entered(netns):
            server = ThreadingHTTPServer((host, port), handler)
    else:
        server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    return server
