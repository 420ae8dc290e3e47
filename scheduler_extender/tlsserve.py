"""A WSGI server (cheroot) that serves TLS and requires a client certificate,
reloads its certificate files when they change, and keeps slow or idle
connections from tying up worker threads.

Nothing here knows about the extender: an admission webhook can serve its app
the same way (``Listener`` + ``ServeOptions`` + optional ``TLSFiles``).

- **Mutual TLS.** ``TLSFiles`` names the serving certificate, its key and the
  CA that signs the clients' certificates. A client without a certificate, or
  with one another CA signed, is refused at the handshake (TLS alert; it never
  gets to send a request).
- **Reload.** The three files are stat'ed at most once per ``check_interval``
  on new connections; when one changed (a Secret update swaps a symlink), a new
  context is built for the connections that follow. A broken set (a key that
  does not match, a half-copied file) is logged and the previous context stays.
- **Slow clients.** The handshake runs step by step (non-blocking) in the
  server's selector thread, never in a worker, bounded by ``read_timeout`` in
  total; a new plain-HTTP connection waits in the selector until its first
  bytes arrive. A worker is taken only by a connection that has something to
  read (and, with TLS, has shown a valid client certificate). Workers are a
  fixed pool; connections beyond the accept queue get 503.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheroot import makefile as cheroot_makefile
from cheroot import wsgi as cheroot_wsgi
from cheroot.ssl import Adapter

#: what the server reports through ``on_event`` (kind, fields)
EventSink = Callable[[str, dict[str, Any]], None]


class TLSConfigError(ValueError):
    """The certificate, key or client CA cannot be used (message says which and why)."""


@dataclass(frozen=True)
class TLSFiles:
    """Serving certificate (PEM, may carry the chain), its key, and the CA bundle
    that client certificates must chain to. The labels name the settings in
    errors (a program passes its own flag names)."""

    cert_file: str
    key_file: str
    client_ca_file: str
    cert_label: str = "certificate file"
    key_label: str = "key file"
    client_ca_label: str = "client CA file"

    def paths(self) -> tuple[tuple[str, str], ...]:
        return (
            (self.cert_label, self.cert_file),
            (self.key_label, self.key_file),
            (self.client_ca_label, self.client_ca_file),
        )


def _check_readable(label: str, path: str) -> None:
    if not path:
        raise TLSConfigError(f"{label} is not set")
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise TLSConfigError(f"{label} {path}: cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise TLSConfigError(f"{label} {path}: file is empty")


def build_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the client CA.

    Raises :class:`TLSConfigError` naming the file and the problem: missing,
    unreadable, empty, not PEM, a key that does not match the certificate, a CA
    bundle without a certificate."""
    for label, path in files.paths():
        _check_readable(label, path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.cert_file, files.key_file)
    except ssl.SSLError as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            raise TLSConfigError(
                f"{files.key_label} {files.key_file} does not match the certificate in "
                f"{files.cert_label} {files.cert_file}"
            ) from exc
        raise TLSConfigError(
            f"{files.cert_label} {files.cert_file} / {files.key_label} {files.key_file}: "
            f"not a PEM certificate and matching private key ({exc.reason or text})"
        ) from exc
    try:
        ctx.load_verify_locations(cafile=files.client_ca_file)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"{files.client_ca_label} {files.client_ca_file}: no PEM CA certificate in it "
            f"({exc.reason or exc})"
        ) from exc
    if not ctx.get_ca_certs():
        raise TLSConfigError(
            f"{files.client_ca_label} {files.client_ca_file}: no CA certificate in it"
        )
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a Secret volume swaps ..data
    except OSError:
        return (-1,)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ReloadingContext:
    """The current server context; rebuilt when one of the files changed."""

    def __init__(
        self,
        files: TLSFiles,
        *,
        check_interval: float = 1.0,
        on_event: EventSink | None = None,
    ) -> None:
        self.files = files
        self.check_interval = check_interval
        self._on_event = on_event
        self._lock = threading.Lock()
        self._stamps = self._current_stamps()
        self._context = build_context(files)
        self._checked = time.monotonic()
        self.reloads = 0
        self.failures = 0

    def _current_stamps(self) -> tuple[tuple[int, ...], ...]:
        return tuple(_stamp(p) for _, p in self.files.paths())

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return self._context
        with self._lock:
            self._checked = now
            stamps = self._current_stamps()
            if stamps != self._stamps:
                self._stamps = stamps
                try:
                    self._context = build_context(self.files)
                except TLSConfigError as exc:
                    self.failures += 1
                    self._emit("tls reload failed", error=str(exc), result="failed")
                else:
                    self.reloads += 1
                    self._emit("tls files reloaded", result="ok")
            return self._context

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)


class _LazyHandshakeAdapter(Adapter):
    """cheroot's TLS hook: wraps the accepted socket without a handshake (the
    server drives it, non-blocking); the context comes from ``ReloadingContext``."""

    def __init__(self, contexts: ReloadingContext) -> None:
        super().__init__(contexts.files.cert_file, contexts.files.key_file)
        self.contexts = contexts

    def bind(self, sock: socket.socket) -> socket.socket:
        return sock

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        wrapped = self.contexts.current().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, self.get_environ(wrapped)

    def get_environ(self, sock: Any = None) -> dict[str, str]:
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock: Any, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
        return cheroot_makefile.MakeFile(sock, mode, bufsize)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0
    threads: int = 4
    #: seconds: the whole TLS handshake, an idle connection before its first
    #: request, and each read/write of a request
    read_timeout: float = 10.0
    #: cheroot's own body cap (the app should check first, with its own message)
    max_body_bytes: int = 0
    max_header_bytes: int = 64 * 1024
    #: connections waiting for a worker; more get 503 at once
    queue_size: int = 64
    server_name: str = "wsgi"


class _Linger:
    """Refused connections: our side is shut (the TLS alert, then FIN, are on
    their way); what the client still sends is read and dropped until it closes
    or ``seconds`` pass, so closing does not reset the connection before the
    client has read the alert. One thread, a bounded number of sockets."""

    def __init__(self, seconds: float = 2.0, limit: int = 256) -> None:
        self.seconds = seconds
        self.limit = limit
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._thread: threading.Thread | None = None

    def add(self, sock: socket.socket, close: Callable[[], None]) -> None:
        """``close`` closes the connection's own objects; a duplicate of the
        descriptor stays here."""
        raw = socket.socket(fileno=os.dup(sock.fileno()))  # plain bytes, not TLS records
        with contextlib.suppress(OSError):
            close()
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
        with self._lock:
            if len(self._deadlines) >= self.limit:
                raw.close()
                return
            raw.setblocking(False)
            self._deadlines[raw] = time.monotonic() + self.seconds
            self._selector.register(raw, selectors.EVENT_READ)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tls-linger", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._deadlines:
                    self._thread = None
                    return
            for key, _ in self._selector.select(timeout=0.2):
                raw = key.fileobj
                assert isinstance(raw, socket.socket)
                try:
                    done = not raw.recv(1 << 16)
                except BlockingIOError:
                    done = False
                except OSError:
                    done = True
                if done:
                    self._drop(raw)
            now = time.monotonic()
            with self._lock:
                late = [r for r, t in self._deadlines.items() if t <= now]
            for raw in late:
                self._drop(raw)

    def _drop(self, raw: socket.socket) -> None:
        with self._lock:
            if self._deadlines.pop(raw, None) is None:
                return
            self._selector.unregister(raw)
        raw.close()


class _Server(cheroot_wsgi.Server):
    """cheroot, with handshakes and first reads taken out of the workers."""

    def __init__(self, app: Any, opts: ServeOptions, log: logging.Logger,
                 on_event: EventSink | None,
                 authorize: Callable[[dict[str, Any]], str | None] | None) -> None:
        super().__init__(
            (opts.host, opts.port),
            app,
            numthreads=opts.threads,
            max=opts.threads,
            server_name=opts.server_name,
            timeout=opts.read_timeout,  # type: ignore[arg-type]  # a float works
            shutdown_timeout=2,
            accepted_queue_size=opts.queue_size,
            accepted_queue_timeout=0,
        )
        self.max_request_body_size = opts.max_body_bytes
        self.max_request_header_size = opts.max_header_bytes
        self._log = log
        self._on_event = on_event
        self._authorize = authorize
        self._linger = _Linger()

    # cheroot writes to stderr by default
    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        self._log.log(level, "%s", msg, exc_info=traceback)

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)

    def _manager(self) -> Any:
        return self._connections  # type: ignore[attr-defined]  # set by prepare()

    def _park(self, conn: Any, started: float) -> None:
        """Back to the selector until readable; expires ``read_timeout`` after ``started``."""
        self._manager().put(conn)
        conn.last_used = time.time() - (time.monotonic() - started)

    @staticmethod
    def _first_seen(conn: Any) -> float:
        started: float | None = getattr(conn, "first_seen", None)
        if started is None:
            started = conn.first_seen = time.monotonic()
        return started

    def process_conn(self, conn: Any) -> None:
        sock = conn.socket
        if isinstance(sock, ssl.SSLSocket) and not getattr(conn, "tls_ready", False):
            self._handshake_step(conn, sock)
            return
        if not getattr(conn, "seen", False):
            conn.seen = True
            if not conn.rfile.has_data():
                self._park(conn, self._first_seen(conn))
                return
        super().process_conn(conn)

    def _handshake_step(self, conn: Any, sock: ssl.SSLSocket) -> None:
        started = self._first_seen(conn)
        peer = getattr(conn, "remote_addr", None)
        sock.settimeout(0.0)
        try:
            sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if time.monotonic() - started > self.timeout:
                self._refuse(conn, peer, "TLS handshake not finished within the read timeout")
            else:
                self._park(conn, started)
            return
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            self._refuse(conn, peer, f"TLS handshake failed: {reason}")
            return
        sock.settimeout(self.timeout)
        if self._authorize is not None:
            refusal = self._authorize(sock.getpeercert() or {})
            if refusal:
                self._refuse(conn, peer, refusal)
                return
        conn.tls_ready = True
        conn.seen = True
        if conn.rfile.has_data() or sock.pending():
            super().process_conn(conn)
        else:
            self._manager().put(conn)

    def _refuse(self, conn: Any, peer: Any, why: str) -> None:
        self._emit("connection refused", peer=peer, reason=why)
        try:
            self._linger.add(conn.socket, conn.close)
        except OSError:
            with contextlib.suppress(OSError):
                conn.close()


class Listener:
    """One listening WSGI server. ``start()`` runs it on a thread; ``serve()``
    runs it on the caller's thread until ``stop()``."""

    def __init__(
        self,
        app: Any,
        opts: ServeOptions,
        tls: TLSFiles | None = None,
        *,
        log: logging.Logger | None = None,
        on_event: EventSink | None = None,
        authorize: Callable[[dict[str, Any]], str | None] | None = None,
        reload_interval: float = 1.0,
    ) -> None:
        self.log = log or logging.getLogger("tlsserve")
        self.contexts = (
            ReloadingContext(tls, check_interval=reload_interval, on_event=on_event)
            if tls is not None
            else None
        )
        self.server = _Server(app, opts, self.log, on_event, authorize)
        if self.contexts is not None:
            self.server.ssl_adapter = _LazyHandshakeAdapter(self.contexts)
        self.server.prepare()  # binds: the port is known from here on
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    @property
    def scheme(self) -> str:
        return "https" if self.contexts is not None else "http"

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def serve(self) -> None:
        self.server.serve()

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self.serve, name=f"serve-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None


__all__ = [
    "Listener",
    "ReloadingContext",
    "ServeOptions",
    "TLSConfigError",
    "TLSFiles",
    "build_context",
]
