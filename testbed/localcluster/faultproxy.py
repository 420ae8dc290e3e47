"""An HTTPS proxy in front of the local kube-apiserver that injects the faults
of a ``localcluster.apifaults.FaultPlan`` (500/429, timeouts, writes whose
reply is lost, latency) into chosen verbs and resources.

    proxy = FaultProxy.for_pki(cp.server, cp.pki, workdir).start()
    kubeconfig = proxy.kubeconfig(cp.kubeconfig, workdir / "via-proxy.kubeconfig")
    proxy.plan.set_rules(rule("error", 0.05, verbs="patch", resources="vpcips/status"))
    ...
    proxy.stop()

TLS: the proxy serves a certificate signed by the cluster CA (the clients'
kubeconfigs keep their ``certificate-authority``) and verifies the apiserver
with the same CA. Identity:

* a bearer token (service accounts, TokenRequest) is passed through as is;
  the upstream connection then carries no client certificate;
* a client certificate (verified against the cluster CA) cannot be passed
  through a TLS terminator, so the proxy talks to the apiserver as its own
  identity (the admin certificate, group ``system:masters``) and impersonates
  the client: ``Impersonate-User`` = the certificate's CN, one
  ``Impersonate-Group`` per O. The apiserver then authorizes the request as
  the client. Such a client may not send ``Impersonate-*`` itself (400);
* neither: forwarded anonymously.

HTTP/1.1 only (ALPN offers no h2: Go clients fall back). Watches and other
streamed replies are relayed chunk by chunk as they arrive. Upgrade requests
(exec, attach, port-forward) are refused with 501. With no rule in force the
proxy forwards every request and reply untouched.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import secrets
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import yaml

from localcluster.apifaults import FaultPlan, FaultRule, classify

log = logging.getLogger(__name__)

#: per-hop headers (RFC 9110 7.6.1) plus what the proxy recomputes
_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    }
)
#: the apiserver closes idle connections after 90 s (Go's IdleTimeout there);
#: a pooled upstream connection older than this is not reused
_UPSTREAM_IDLE = 45.0
_REASONS = {
    429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


class _HasCA(Protocol):
    ca_cert: Path
    ca_key: Path
    admin_cert: Path
    admin_key: Path


class FaultProxyError(RuntimeError):
    """The proxy could not start (certificate, port); the message says which."""


def make_serving_cert(ca_cert: Path, ca_key: Path, directory: Path) -> tuple[Path, Path]:
    """An EC P-256 serving certificate for 127.0.0.1/localhost signed by the
    cluster CA, written into ``directory`` (cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, crt, ext = (directory / f"faultproxy.{s}" for s in ("key", "csr", "crt", "ext"))
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    steps = [
        ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(csr), "-subj", "/CN=tke-fault-proxy"],
        ["x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-set_serial", str(secrets.randbits(63)), "-days", "30", "-sha256",
         "-extfile", str(ext), "-out", str(crt)],
    ]
    for args in steps:
        try:
            subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise FaultProxyError("openssl not found: run hack/setup.sh (step: apt)") from exc
        except subprocess.CalledProcessError as exc:
            raise FaultProxyError(f"openssl {args[0]} failed: {exc.stderr.strip()}") from exc
    key.chmod(0o600)
    return crt, key


@dataclass(frozen=True)
class _Identity:
    user: str = ""
    groups: tuple[str, ...] = ()

    @property
    def is_cert(self) -> bool:
        return bool(self.user)


def _cert_identity(peer: dict[str, Any] | None) -> _Identity:
    if not peer:
        return _Identity()
    user, groups = "", []
    for rdn in peer.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = str(value)
            elif key == "organizationName":
                groups.append(str(value))
    return _Identity(user, tuple(groups))


class FaultProxy:
    """The proxy (threads in this process). ``plan`` may be changed while it runs."""

    def __init__(
        self,
        upstream: str,
        ca_cert: Path,
        serving_cert: Path,
        serving_key: Path,
        *,
        identity_cert: Path | None = None,
        identity_key: Path | None = None,
        plan: FaultPlan | None = None,
        port: int = 0,
    ) -> None:
        u = urlsplit(upstream)
        if u.scheme != "https" or not u.hostname:
            raise FaultProxyError(f"upstream {upstream!r}: want https://host:port")
        self.upstream_host, self.upstream_port = u.hostname, u.port or 443
        self.plan = plan or FaultPlan()
        self.upstream_errors = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._server_ctx.load_cert_chain(str(serving_cert), str(serving_key))
        self._server_ctx.load_verify_locations(str(ca_cert))
        self._server_ctx.verify_mode = ssl.CERT_OPTIONAL
        self._server_ctx.set_alpn_protocols(["http/1.1"])
        self._plain_ctx = ssl.create_default_context(cafile=str(ca_cert))
        self._identity_ctx: ssl.SSLContext | None = None
        if identity_cert is not None:
            self._identity_ctx = ssl.create_default_context(cafile=str(ca_cert))
            self._identity_ctx.load_cert_chain(str(identity_cert), str(identity_key))
        self._server = _Server(("127.0.0.1", port), self)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_pki(
        cls, upstream: str, pki: _HasCA, workdir: Path, plan: FaultPlan | None = None
    ) -> FaultProxy:
        """A proxy for a ``localcluster`` control plane: serving cert from its CA
        (written into ``workdir``), the admin certificate as its own identity."""
        crt, key = make_serving_cert(pki.ca_cert, pki.ca_key, workdir)
        return cls(
            upstream, pki.ca_cert, crt, key,
            identity_cert=pki.admin_cert, identity_key=pki.admin_key, plan=plan,
        )

    # --- life cycle ---
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection (watches end), join the threads."""
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, source: Path, dest: Path) -> Path:
        """A copy of kubeconfig ``source`` whose clusters point at the proxy."""
        cfg = yaml.safe_load(source.read_text())
        for c in cfg.get("clusters") or []:
            c["cluster"]["server"] = self.url
        dest.write_text(yaml.safe_dump(cfg, sort_keys=False))
        dest.chmod(0o600)
        return dest

    def set_rules(self, *rules: FaultRule) -> None:
        self.plan.set_rules(*rules)

    # --- bookkeeping for the handlers ---
    def track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def untrack(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.discard(s)

    def upstream_conn(self, identity: _Identity) -> http.client.HTTPSConnection:
        ctx = self._identity_ctx if identity.is_cert else self._plain_ctx
        assert ctx is not None
        return http.client.HTTPSConnection(
            self.upstream_host, self.upstream_port, context=ctx, timeout=None
        )

    @property
    def can_impersonate(self) -> bool:
        return self._identity_ctx is not None

    def server_ctx(self) -> ssl.SSLContext:
        return self._server_ctx


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        try:
            super().__init__(addr, _Handler)
        except OSError as exc:
            raise FaultProxyError(f"fault proxy cannot listen on {addr}: {exc}") from exc

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)  # the TLS handshake
        try:
            tls = self.proxy.server_ctx().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("fault proxy: TLS handshake with %s failed: %s", client_address, exc)
            return
        self.proxy.track(tls)
        try:
            _Handler(tls, client_address, self)
        except OSError:
            pass  # the client went away
        finally:
            self.proxy.untrack(tls)
            with contextlib.suppress(OSError):
                tls.close()


class _DropError(Exception):
    """Close the client connection without a reply."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 600  # idle keep-alive client connections
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._up: dict[bool, tuple[http.client.HTTPSConnection, float]] = {}

    def finish(self) -> None:
        for conn, _ in self._up.values():
            self._close_up(conn)
        self._up = {}
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fault proxy: " + format, *args)

    # every method the apiserver serves
    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self._send_status(400, f"fault proxy: bad request body: {exc}", close=True)
            return
        identity = _cert_identity(self.connection.getpeercert())
        refusal = self._refusal(identity)
        if refusal:
            self._send_status(refusal[0], refusal[1])
            return
        req = classify(self.command, self.path)
        try:
            self._apply(self.server.proxy.plan.pick(req), req.verb, identity, body)
        except _DropError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _refusal(self, identity: _Identity) -> tuple[int, str] | None:
        if self.headers.get("Upgrade"):
            return 501, "fault proxy: Upgrade (exec/attach/port-forward) not supported"
        if not identity.is_cert:
            return None
        if any(k.lower().startswith("impersonate-") for k in self.headers):
            return 400, "fault proxy: a client-certificate client may not send Impersonate-*"
        if not self.server.proxy.can_impersonate:
            return 401, "fault proxy: no identity to forward client-certificate clients with"
        return None

    def _apply(
        self, fault: FaultRule | None, verb: str, identity: _Identity, body: bytes | None
    ) -> None:
        kind = fault.kind if fault is not None else ""
        status = fault.status if fault is not None else 0
        delay = fault.delay if fault is not None else 0.0
        label = fault.label if fault is not None else ""
        if kind == "error":
            self._send_status(status, f"fault injected: {label}")
            return
        if kind in ("timeout", "slow"):
            self._hold(delay)
            if kind == "timeout":
                raise _DropError  # never forwarded
        resp = self._forward(identity, body)
        if resp is None:
            return
        if kind == "error-after-write":
            self._drain(resp)
            self._send_status(status, f"fault injected: {label}")
        elif kind == "reply-lost":
            if verb != "watch":
                self._drain(resp)
            self._hold(delay)
            raise _DropError
        else:
            self._relay(resp, identity.is_cert)

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self.server.proxy.stopping.wait(seconds)

    # --- request ---
    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(8)
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        n = int(length)
        if n < 0:
            raise ValueError(f"Content-Length {n}")
        return self.rfile.read(n)

    def _forward(self, identity: _Identity, body: bytes | None) -> http.client.HTTPResponse | None:
        proxy = self.server.proxy
        headers: list[tuple[str, str]] = []
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in _HOP or (identity.is_cert and lk == "authorization"):
                continue
            headers.append((k, v))
        if identity.is_cert:
            headers.append(("Impersonate-User", identity.user))
            headers.extend(("Impersonate-Group", g) for g in identity.groups)
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        conn = self._upstream(identity)
        try:
            conn.putrequest(self.command, self.path, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._close_up(conn)
            self._up.pop(identity.is_cert, None)
            with proxy._lock:
                proxy.upstream_errors += 1
            log.warning("fault proxy: %s %s upstream failed: %s", self.command, self.path, exc)
            self._send_status(502, f"fault proxy: apiserver unreachable: {exc}")
            return None
        return resp

    def _upstream(self, identity: _Identity) -> http.client.HTTPSConnection:
        key = identity.is_cert
        now = time.monotonic()
        held = self._up.get(key)
        if held is not None and now - held[1] < _UPSTREAM_IDLE and held[0].sock is not None:
            conn = held[0]
        else:
            if held is not None:
                self._close_up(held[0])
            conn = self.server.proxy.upstream_conn(identity)
            conn.connect()
            assert conn.sock is not None
            self.server.proxy.track(conn.sock)
        self._up[key] = (conn, now)
        return conn

    def _close_up(self, conn: http.client.HTTPSConnection) -> None:
        if conn.sock is not None:
            self.server.proxy.untrack(conn.sock)
        with contextlib.suppress(OSError):
            conn.close()

    # --- reply ---
    def _drain(self, resp: http.client.HTTPResponse) -> None:
        resp.read()
        if resp.will_close:
            self._forget_up()

    def _forget_up(self) -> None:
        for conn, _ in self._up.values():
            self._close_up(conn)
        self._up = {}

    def _relay(self, resp: http.client.HTTPResponse, is_cert: bool) -> None:
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        streamed = not no_body and resp.length is None
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP:
                self.send_header(k, v)
        if streamed:
            self.send_header("Transfer-Encoding", "chunked")
        elif not no_body:
            self.send_header("Content-Length", str(resp.length or 0))
        elif resp.getheader("Content-Length") is not None:
            self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            if no_body:
                resp.read()
            elif streamed:
                self._copy_chunked(resp)
            else:
                self._copy_sized(resp, resp.length or 0)
        except (OSError, http.client.HTTPException):
            self._forget_up()  # mid-stream: neither side can be reused
            self.close_connection = True
            return
        if resp.will_close:
            held = self._up.pop(is_cert, None)
            if held is not None:
                self._close_up(held[0])

    def _copy_chunked(self, resp: http.client.HTTPResponse) -> None:
        while True:
            data = resp.read1(65536)
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _copy_sized(self, resp: http.client.HTTPResponse, left: int) -> None:
        while left > 0:
            data = resp.read(min(65536, left))
            if not data:
                raise OSError("apiserver closed mid-reply")
            self.wfile.write(data)
            left -= len(data)

    def _send_status(self, code: int, message: str, *, close: bool = False) -> None:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest"),
            "code": code,
        }
        if code == 429:
            body["details"] = {"retryAfterSeconds": 1}
        data = json.dumps(body).encode()
        self.send_response_only(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code == 429:
            self.send_header("Retry-After", "1")
        if close:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(data)
