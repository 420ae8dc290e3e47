"""tlsserve's keep-alive linger and one-write replies (scheduler_extender.tlsserve):
a worker waiting for its connection's next request never keeps another
connection from being served, and replies with and without a body arrive whole."""

from __future__ import annotations

import http.client
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from scheduler_extender.tlsserve import Listener, ServeOptions


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/empty":
        start_response("204 No Content", [])
        return []
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def one_worker() -> Iterator[Listener]:
    # one worker that lingers far longer than the test waits: only the hand-back
    # when another connection is queued lets the second client in
    listener = Listener(app, ServeOptions(threads=1, keepalive_linger=30.0)).start()
    try:
        yield listener
    finally:
        listener.stop()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path)
    r = conn.getresponse()
    return r.status, r.read()


def test_a_lingering_worker_yields_to_a_waiting_connection(one_worker: Listener) -> None:
    a = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=10)
    b = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=10)
    try:
        assert get(a, "/a1") == (200, b"/a1")  # the only worker now waits on a
        assert get(b, "/b1") == (200, b"/b1")  # ... and hands a back for b
        assert get(a, "/a2") == (200, b"/a2")  # a kept alive, served again
        assert get(b, "/b2") == (200, b"/b2")
    finally:
        a.close()
        b.close()


def test_replies_without_a_body_and_many_on_one_connection(one_worker: Listener) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", one_worker.port, timeout=10)
    try:
        for i in range(20):
            assert get(conn, f"/r{i}") == (200, f"/r{i}".encode())
            assert get(conn, "/empty") == (204, b"")
    finally:
        conn.close()
