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
  fixed pool; connections beyond the accept queue get 503. A request's head
  must arrive within ``read_timeout`` of the worker taking it (a client that
  sends a byte now and then is cut off), the body within ``read_timeout`` per
  read.
- **Large bodies at C speed.** cheroot's socket files are built on the
  pure-Python ``_pyio``: a 14 MB body was read as many chunks, each into a
  fresh buffer of the full size, then joined and sliced (three copies), and a
  7 MB reply was re-copied whole before every partial ``send``. Reads and
  writes of 64 KiB or more go straight to the socket (``recv_into`` one
  buffer, ``sendall``); smaller ones take cheroot's path unchanged. A large
  ``wsgi.input.read(n)`` returns that buffer, a ``bytearray`` (bytes-like, not
  copied into a ``bytes``): an app hands it to a parser, not back as a reply.
- **Keep-alive without hops.** cheroot hands a kept-alive connection back to
  its selector thread after each reply, and the next request comes to a worker
  through a queue (two thread switches, a selector registration). With
  ``keepalive_linger`` set, the worker that answered waits up to that long for
  the connection's next request and serves it itself, as long as no other
  connection is waiting for a worker (checked every ``_LINGER_STEP``). A
  reply's head and body go out in one write (one TLS record, one segment).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheroot import wsgi as cheroot_wsgi
from cheroot.makefile import StreamReader, StreamWriter
from cheroot.server import HTTPConnection, HTTPRequest

from kit.tlsserve import (
    EventSink,
    LazyTLSAdapter,
    ReloadingContext,
    TLSConfigError,
    TLSFiles,
    build_context,
)


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
    #: seconds a worker waits for a kept-alive connection's next request before
    #: handing it back to the selector (0: at once, cheroot's own behaviour)
    keepalive_linger: float = 0.0


_LINGER_STEP = 0.002  # how often a lingering worker checks for queued connections


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


#: reads and writes this large or larger bypass cheroot's pure-Python buffering
LARGE_IO = 64 * 1024


class _FastReader(StreamReader):
    """cheroot's reader; a large ``read(n)`` fills one buffer with ``recv_into``
    (the bytes already buffered first), until n bytes or end of stream, as
    ``read`` does, and returns that buffer (a ``bytearray``: no 14 MB copy into a
    ``bytes``). Timeouts and errors are the socket's, as before."""

    def read(self, size: int | None = -1) -> Any:  # bytes, or a bytearray for a large read
        if size is None or size < LARGE_IO:
            return super().read(size)  # type: ignore[no-untyped-call]
        with self._read_lock:  # type: ignore[attr-defined]
            pending: bytes = self._read_buf  # type: ignore[has-type]
            start: int = self._read_pos  # type: ignore[has-type]
            buffered = pending[start : start + size]
            if start + len(buffered) >= len(pending):
                self._read_buf, self._read_pos = b"", 0
            else:
                self._read_pos = start + len(buffered)
            out = bytearray(size)
            view = memoryview(out)
            view[: len(buffered)] = buffered
            got = len(buffered)
            try:
                while got < size:
                    n = self.raw.readinto(view[got:])
                    if not n:  # end of stream (or would block: return what came)
                        break
                    got += n
            finally:
                view.release()
        if got < size:
            del out[got:]
        self.bytes_read += got
        return out  # not copied into a bytes: the callers take any bytes-like


class _FastWriter(StreamWriter):
    """cheroot's writer; a large write goes out with one ``sendall`` (after
    what is buffered) instead of re-copying the remaining bytes before each
    partial send."""

    def __init__(self, sock: socket.socket, mode: str = "wb", bufsize: int = 8192) -> None:
        super().__init__(sock, mode, bufsize)
        self._sock = sock

    def write(self, b: Any) -> Any:
        if len(b) < LARGE_IO:
            return super().write(b)  # type: ignore[no-untyped-call]
        self._checkClosed()
        with self._write_lock:  # type: ignore[attr-defined]
            self._flush_unlocked()  # type: ignore[attr-defined]
            self._sock.sendall(b)
        self.bytes_written += len(b)
        return len(b)


def _fast_makefile(sock: socket.socket, mode: str = "r", bufsize: int = 8192) -> Any:
    return _FastReader(sock, mode, bufsize) if "r" in mode else _FastWriter(sock, mode, bufsize)


_worker = threading.local()  # the connection a worker thread is serving


class _HeadDeadlines:
    """A request's head (request line + headers) must arrive within ``seconds`` of
    the worker taking the connection; past that the socket is shut, which ends the
    worker's read. Per-read timeouts alone let a client that sends a byte now and
    then keep a worker for ever."""

    def __init__(self, seconds: float, on_expire: Callable[[Any], None]) -> None:
        self.seconds = seconds
        self._on_expire = on_expire
        self._lock = threading.Lock()
        self._deadlines: dict[Any, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, conn: Any) -> None:
        with self._lock:
            self._deadlines[conn] = time.monotonic() + self.seconds
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="head-deadlines",
                                                daemon=True)
                self._thread.start()

    def done(self, conn: Any) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            with self._lock:
                late = [c for c, t in self._deadlines.items() if t <= now]
                for c in late:
                    del self._deadlines[c]
            for conn in late:
                with contextlib.suppress(OSError, AttributeError):
                    socket.socket.shutdown(conn.socket, socket.SHUT_RDWR)
                self._on_expire(conn)

    def stop(self) -> None:
        self._stop.set()


class _OneWriteRequest(HTTPRequest):
    """cheroot's request: while the gateway writes a body chunk, the response
    head is held back and sent with it (cheroot writes them separately: two
    TLS records). A reply without a body sends its head as cheroot does."""

    _held: bytes = b""
    hold_head: bool = False

    def send_headers(self) -> None:
        if not self.hold_head:
            super().send_headers()
            return
        wfile = self.conn.wfile
        capture = _Capture()
        self.conn.wfile = capture
        try:
            super().send_headers()
        finally:
            self.conn.wfile = wfile
        self._held = capture.data

    def write(self, chunk: bytes) -> None:
        held, self._held = self._held, b""
        if held and not self.chunked_write and len(chunk) < LARGE_IO:
            self.conn.wfile.write(held + chunk)
            return
        if held:
            self.conn.wfile.write(held)
        super().write(chunk)

    def flush_head(self) -> None:
        """A head still held (the chunk's write did not happen): out alone."""
        held, self._held = self._held, b""
        if held:
            self.conn.wfile.write(held)


class _Capture:
    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


class _OneWriteGateway(cheroot_wsgi.Gateway_10):
    def write(self, chunk: bytes) -> None:
        req = self.req
        if not isinstance(req, _OneWriteRequest):
            super().write(chunk)
            return
        req.hold_head = True
        try:
            super().write(chunk)
        finally:
            req.hold_head = False
            req.flush_head()


class _DeadlineConnection(HTTPConnection):
    """cheroot's connection, with its request head under ``_HeadDeadlines``;
    with ``keepalive_linger``, the worker serves the connection's next requests
    itself while they come quickly."""

    RequestHandlerClass = _OneWriteRequest

    def __init__(self, server: Any, sock: Any, makefile: Any = None) -> None:
        # cheroot's makefile (plain or its TLS adapter's) is MakeFile over the
        # socket either way: ours is the same with the large-I/O paths
        super().__init__(server, sock, _fast_makefile)

    def communicate(self) -> bool:
        keep = self._communicate_one()
        linger: float = self.server.keepalive_linger
        while keep and linger > 0 and self._next_request_within(linger):
            keep = self._communicate_one()
        return keep

    def _communicate_one(self) -> bool:
        heads: _HeadDeadlines = self.server.head_deadlines
        heads.start(self)
        _worker.conn = self
        try:
            return bool(super().communicate())  # type: ignore[no-untyped-call]
        finally:
            _worker.conn = None
            heads.done(self)

    def _next_request_within(self, seconds: float) -> bool:
        """Whether the next request's bytes arrive within ``seconds`` while no
        other connection waits for a worker (then this one goes back to the
        selector, as cheroot would do at once)."""
        sock = self.socket
        if self.rfile.has_data() or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return True
        deadline = time.monotonic() + seconds
        requests = self.server.requests
        while not requests.qsize and not self.server.interrupt:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                readable, _, _ = select.select([sock], [], [], min(left, _LINGER_STEP))
            except (OSError, ValueError):  # closed under us
                return False
            if readable:
                return True
        return False


class _Server(cheroot_wsgi.Server):
    """cheroot, with handshakes and first reads taken out of the workers."""

    ConnectionClass = _DeadlineConnection

    def __init__(self, app: Any, opts: ServeOptions, log: logging.Logger,
                 on_event: EventSink | None,
                 authorize: Callable[[dict[str, Any]], str | None] | None) -> None:
        self.head_deadlines = _HeadDeadlines(
            opts.read_timeout,
            lambda conn: self._emit("request head too slow", peer=getattr(conn, "remote_addr",
                                                                          None)))

        def app_after_head(environ: dict[str, Any], start_response: Any) -> Any:
            conn = getattr(_worker, "conn", None)
            if conn is not None:  # the head is in: the app reads the body at its pace
                self.head_deadlines.done(conn)
            return app(environ, start_response)

        super().__init__(
            (opts.host, opts.port),
            app_after_head,
            numthreads=opts.threads,
            max=opts.threads,
            server_name=opts.server_name,
            timeout=opts.read_timeout,  # type: ignore[arg-type]  # a float works
            shutdown_timeout=2,
            accepted_queue_size=opts.queue_size,
            accepted_queue_timeout=0,
        )
        self.gateway = _OneWriteGateway
        self.keepalive_linger = opts.keepalive_linger
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
            self.server.ssl_adapter = LazyTLSAdapter(self.contexts)
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
        self.server.head_deadlines.stop()
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None


__all__ = [
    "LARGE_IO",
    "Listener",
    "ReloadingContext",
    "ServeOptions",
    "TLSConfigError",
    "TLSFiles",
    "build_context",
]
