"""The unix-socket endpoint the shim talks to (protocol v1, see
``cni.plugin.tke_route_eni``): one request per connection, a thread each,
at most ``max_connections`` at once (then a "busy" CNI error, code 11), each
client with ``read_timeout`` seconds to send its request."""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import time
from contextlib import suppress
from typing import Any

from .agent import Agent
from .cnitypes import (
    ERR_DECODE,
    ERR_INTERNAL,
    ERR_TRY_AGAIN,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    CniError,
    decode_wire_request,
    parse_request,
)

log = logging.getLogger(__name__)
MAX_REQUEST = 4 << 20


def _reply(code: int, body: dict[str, Any] | None) -> bytes:
    header = f'{{"v":{PROTOCOL_VERSION},"exit":{code}}}\n'.encode()
    return header + (json.dumps(body).encode() + b"\n" if body is not None else b"")


def serve_one(agent: Agent, raw: bytes) -> bytes:
    start = time.perf_counter()
    verb = "?"
    version = SUPPORTED_VERSIONS[-1]
    try:
        if len(raw) > MAX_REQUEST:
            raise CniError(ERR_DECODE, f"request larger than {MAX_REQUEST} bytes")
        env, stdin = decode_wire_request(raw)
        verb = env.get("CNI_COMMAND", "?")
        req = parse_request(env, stdin)
        version = req.cni_version
        result = agent.handle(req)
        agent.metrics.requests.labels(verb, "ok").inc()
        return _reply(0, result)
    except CniError as err:
        agent.metrics.requests.labels(verb, "error").inc()
        agent.metrics.errors.labels(verb, str(err.code)).inc()
        log.warning(
            "cni call failed",
            extra={"verb": verb, "code": err.code, "error": err.msg, "details": err.details},
        )
        return _reply(1, err.to_json(version))
    except Exception as exc:  # process boundary: every failure becomes CNI error JSON
        agent.metrics.requests.labels(verb, "error").inc()
        agent.metrics.errors.labels(verb, str(ERR_INTERNAL)).inc()
        log.exception("cni call crashed", extra={"verb": verb})
        return _reply(
            1,
            CniError(ERR_INTERNAL, f"tke-eni-agent: {type(exc).__name__}: {exc}").to_json(version),
        )
    finally:
        agent.metrics.latency.labels(verb).observe(time.perf_counter() - start)


class _Handler(socketserver.BaseRequestHandler):
    server: CniSocketServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        raw = _read_request(sock, self.server.read_timeout)
        if raw is None:
            return  # a liveness probe (connect and close), or cut off: logged
        try:
            sock.settimeout(self.server.read_timeout)  # a client that never reads
            sock.sendall(serve_one(self.server.agent, raw))
        except OSError as exc:  # the shim went away (runtime timeout, kill)
            log.warning("cni reply not delivered", extra={"error": str(exc)})


def _read_request(sock: socket.socket, timeout: float) -> bytes | None:
    """The request (up to EOF), or None: nothing sent, or not all of it
    within ``timeout`` seconds (a slow or stuck client must not hold a
    connection slot, or the agent, forever)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_REQUEST:
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
        except TimeoutError:
            log.warning(
                "cni client too slow: cut off",
                extra={"received": size, "timeout": timeout},
            )
            return None
        except OSError as exc:
            log.warning("cni request not received", extra={"error": str(exc)})
            return None
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks) if chunks else None


def _busy_reply(active: int, cap: int) -> bytes:
    err = CniError(
        ERR_TRY_AGAIN,
        f"tke-eni-agent is busy: {active} connections open on its socket (cap {cap})",
        "the runtime retries; raise --socket-max-connections if bursts hit this",
    )
    return _reply(1, err.to_json(SUPPORTED_VERSIONS[-1]))


class CniSocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection, at most ``max_connections`` at once; each
    client has ``read_timeout`` seconds to send its request."""

    daemon_threads = True
    request_queue_size = 256  # a pod burst connects at once; a full backlog is EAGAIN

    def __init__(
        self,
        path: str,
        agent: Agent,
        *,
        read_timeout: float = 5.0,
        max_connections: int = 128,
    ) -> None:
        self.agent = agent
        self.path = path
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._active = 0
        self._active_lock = threading.Lock()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of a previous run
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)
        self._thread: threading.Thread | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        """Runs in the accepting thread: past the cap, answer "busy" without
        a thread (never blocking: the reply fits the socket buffer)."""
        with self._active_lock:
            busy = self._active >= self.max_connections
            if not busy:
                self._active += 1
            active = self._active
        if not busy:
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._done()
                raise
            return
        self.agent.metrics.refused.inc()
        log.warning(
            "cni connection refused: too many open",
            extra={"active": active, "cap": self.max_connections},
        )
        sock: socket.socket = request
        try:
            sock.setblocking(False)
            with suppress(OSError):  # read what was sent: no reset on close
                while sock.recv(65536):
                    pass
            sock.send(_busy_reply(active, self.max_connections))
        except OSError as exc:
            log.warning("busy reply not delivered", extra={"error": str(exc)})
        finally:
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._active_lock:
            self._active -= 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="cni-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)
