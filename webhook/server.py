"""The webhook's admission listener on cheroot (a production WSGI server; the
plain-HTTP health port is the daemon kit's status server, ``kit.httpserve``):

* ``admission_listener``: the admission endpoint over TLS (the API server
  calls webhooks over HTTPS only). The certificate and key are checked at
  start (exit 2 naming the file and the problem) and re-read when either
  file changes: a Secret volume update swaps the files, the next connection
  gets the new certificate, no restart. The API server keeps its connections
  open, so a connection made with an earlier certificate is answered with
  ``Connection: close`` once a newer one is loaded: the client reconnects
  and sees the new certificate. A broken pair (half-written, key not
  matching) is logged and counted; the previous certificate stays.

Slow or idle clients never hold up the API server's calls: a new TLS
connection is wrapped without a handshake; the handshake then runs step by
step, non-blocking, in cheroot's selector thread (never in a worker, never on
the accept path), bounded by --read-timeout in total; a connection takes a
worker only once it has a request to read, and the request's head must then
arrive within --read-timeout (a client sending a byte now and then is cut
off); the body gets --read-timeout per read. A connection that has served a
request stays open while idle for --idle-timeout (longer than the API server's
own idle timeout, so it is the API server that closes idle connections: it
never sends a call on a connection we are closing).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from cheroot import connections, makefile, wsgi
from cheroot.server import HTTPConnection, HTTPRequest

from kit import logs
from kit.tlsserve import (
    GENERATION_KEY,
    LazyTLSAdapter,
    ReloadingContext,
    TLSFiles,
)

from .config import Settings
from .metrics import Metrics

log = logging.getLogger("tke_eni_webhook.server")


def close_stale_connections(app: Any, contexts: ReloadingContext) -> Any:
    """WSGI middleware: a request on a connection made with an earlier certificate
    is answered with ``Connection: close`` (the client reconnects to the new one)."""

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        contexts.current()  # notices changed files between connections, too
        if environ.get(GENERATION_KEY, contexts.generation) >= contexts.generation:
            return app(environ, start_response)

        def closing(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [h for h in headers if h[0].lower() != "connection"]
            return start_response(status, [*headers, ("Connection", "close")], exc_info)

        return app(environ, closing)

    return middleware


class _HeadDeadline:
    """The reading side of a connection's socket: while ``deadline`` is set, each
    read may wait only for what is left until it (the request head as a whole)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.deadline: float | None = None

    def recv_into(self, buffer: Any, *args: Any) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                # cheroot answers "timed out" (its timeout text) with 408 and closes
                raise TimeoutError("timed out")
            self._sock.settimeout(min(left, self._sock.gettimeout() or left))
        return int(self._sock.recv_into(buffer, *args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Request(HTTPRequest):
    def parse_request(self) -> None:
        guard: _HeadDeadline | None = getattr(self.conn, "head_guard", None)
        timeout = float(self.server.timeout)
        if guard is not None:
            guard.deadline = time.monotonic() + timeout
        try:
            super().parse_request()
            if self.ready:
                self.conn.served = True  # from now on idle between requests: --idle-timeout
        finally:
            if guard is not None:
                guard.deadline = None
                with contextlib.suppress(OSError):
                    self.conn.socket.settimeout(timeout)


class _Connection(HTTPConnection):
    """Reads through a ``_HeadDeadline`` (writes go to the socket itself)."""

    RequestHandlerClass = _Request

    def __init__(self, server: Any, sock: Any, mf: Any = makefile.MakeFile) -> None:
        self.head_guard = _HeadDeadline(sock)
        guard = self.head_guard

        def files(s: Any, mode: str, bufsize: int) -> Any:
            return mf(guard if "r" in mode else s, mode, bufsize)

        super().__init__(server, sock, files)


class _Connections(connections.ConnectionManager):
    """cheroot's selector loop, closing a connection that has served a request only
    after ``idle_timeout`` idle (others: after the read timeout, cheroot's rule)."""

    def _expire(self, threshold: float) -> None:
        idle = time.time() - float(getattr(self.server, "idle_timeout", 0.0))
        selector = self._selector  # type: ignore[attr-defined]  # cheroot's private selector
        for sock_fd, conn in list(selector.connections):
            if conn is self.server:
                continue
            limit = min(idle, threshold) if getattr(conn, "served", False) else threshold
            if conn.last_used < limit:
                selector.unregister(sock_fd)
                conn.close()


class _Server(wsgi.Server):
    """cheroot with TLS handshakes and first reads kept out of the worker threads,
    a deadline for each request head, and a separate idle timeout."""

    ConnectionClass = _Connection
    idle_timeout: float = 0.0

    def prepare(self) -> None:
        super().prepare()
        self._connections.__class__ = _Connections  # type: ignore[attr-defined]  # by prepare()

    on_refused: Callable[[str], None] | None = None
    on_handshake: Callable[[], None] | None = None

    def error_log(self, msg: str = "", level: int = logging.INFO,
                  traceback: bool = False) -> None:
        log.log(level, "%s", msg, exc_info=traceback)

    def _park(self, conn: Any, started: float) -> None:
        """Back to the selector until readable; expires --read-timeout after ``started``."""
        self._connections.put(conn)  # type: ignore[attr-defined]  # set by prepare()
        conn.last_used = time.time() - (time.monotonic() - started)

    def process_conn(self, conn: Any) -> None:  # runs in the selector thread
        started: float | None = getattr(conn, "first_seen", None)
        if started is None:
            started = conn.first_seen = time.monotonic()
        sock = conn.socket
        if isinstance(sock, ssl.SSLSocket) and not getattr(conn, "tls_done", False):
            self._handshake_step(conn, sock, started)
            return
        if not getattr(conn, "seen", False):
            conn.seen = True
            if not conn.rfile.has_data():
                self._park(conn, started)  # wait for its first bytes in the selector
                return
        super().process_conn(conn)

    def _handshake_step(self, conn: Any, sock: ssl.SSLSocket, started: float) -> None:
        sock.settimeout(0.0)
        try:
            sock.do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if time.monotonic() - started > float(self.timeout):
                self._refuse(conn, "TLS handshake not finished within --read-timeout")
            else:
                self._park(conn, started)
            return
        except (ssl.SSLError, OSError) as exc:
            self._refuse(conn, f"TLS handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        sock.settimeout(float(self.timeout))
        conn.tls_done = conn.seen = True
        if self.on_handshake is not None:
            self.on_handshake()
        if conn.rfile.has_data() or sock.pending():
            super().process_conn(conn)
        else:
            self._park(conn, started)

    def _refuse(self, conn: Any, why: str) -> None:
        logs.event(log, logging.DEBUG, "connection refused",
                   peer=getattr(conn, "remote_addr", None), reason=why)
        if self.on_refused is not None:
            self.on_refused(why)
        with contextlib.suppress(OSError):
            conn.close()


class Listener:
    """One bound WSGI server: ``serve()`` on this thread, or ``start()`` a thread."""

    def __init__(self, app: Any, host: str, port: int, *, threads: int, timeout: float,
                 contexts: ReloadingContext | None, name: str, idle_timeout: float = 0.0,
                 on_refused: Callable[[str], None] | None = None,
                 on_handshake: Callable[[], None] | None = None) -> None:
        self.server = _Server((host, port), app, numthreads=threads, max=threads,
                              server_name=name, timeout=timeout,  # type: ignore[arg-type]
                              shutdown_timeout=5, accepted_queue_size=threads * 16,
                              accepted_queue_timeout=0)
        self.server.on_refused = on_refused
        self.server.idle_timeout = idle_timeout
        self.server.on_handshake = on_handshake
        self.scheme = "https" if contexts is not None else "http"
        if contexts is not None:
            self.server.ssl_adapter = LazyTLSAdapter(contexts)
        self.server.prepare()  # binds: the port is known from here on
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    def serve(self) -> None:
        self.server.serve()

    def start(self) -> Listener:
        self._thread = threading.Thread(target=self.serve, name=f"serve-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None


def admission_listener(app: Any, settings: Settings, metrics: Metrics | None = None,
                       *, reload_interval: float = 1.0) -> Listener:
    """The admission server, bound (TLS unless --insecure-http). Raises
    TLSConfigError for unusable files, OSError when it cannot bind."""
    contexts = None

    def refused(_why: str) -> None:
        if metrics is not None:
            metrics.tls_refused.inc()

    def handshake() -> None:
        if metrics is not None:
            metrics.tls_handshakes.inc()

    if not settings.insecure_http:
        def reloaded(_kind: str, fields: dict[str, Any]) -> None:
            result, error = str(fields["result"]), fields.get("error")
            level = logging.INFO if result == "ok" else logging.WARNING
            logs.event(log, level, "tls files reloaded" if result == "ok" else
                       "tls reload failed: the previous certificate stays", error=error)
            if metrics is not None:
                metrics.tls_reloads.labels(result).inc()

        files = TLSFiles(settings.tls_cert_file, settings.tls_key_file,
                         cert_label="--tls-cert-file", key_label="--tls-key-file")
        contexts = ReloadingContext(files, check_interval=reload_interval, on_event=reloaded)
        app = close_stale_connections(app, contexts)
    return Listener(app, settings.host, settings.port, threads=settings.threads,
                    timeout=settings.read_timeout, contexts=contexts,
                    name="tke-eni-ip-webhook", idle_timeout=settings.idle_timeout,
                    on_refused=refused, on_handshake=handshake)

