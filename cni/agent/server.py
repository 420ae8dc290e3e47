"""The unix-socket endpoint the shim talks to (protocol v1, see
``cni.plugin.tke_route_eni``): one request per connection, a thread each."""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
import time
from typing import Any

from .agent import Agent
from .cnitypes import (
    ERR_DECODE,
    ERR_INTERNAL,
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
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REQUEST:
                break
        if not chunks:
            return  # a liveness probe: connect and close
        try:
            sock.sendall(serve_one(self.server.agent, b"".join(chunks)))
        except OSError as exc:  # the shim went away (runtime timeout, kill)
            log.warning("cni reply not delivered", extra={"error": str(exc)})


class CniSocketServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 256  # a pod burst connects at once; a full backlog is EAGAIN

    def __init__(self, path: str, agent: Agent) -> None:
        self.agent = agent
        self.path = path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of a previous run
        super().__init__(path, _Handler)
        os.chmod(path, 0o600)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="cni-socket", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)
