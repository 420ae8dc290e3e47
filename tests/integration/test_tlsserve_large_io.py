"""tlsserve's large reads and writes (scheduler_extender.tlsserve): bodies and
replies at and around the size where they leave cheroot's buffered path
(``LARGE_IO``) arrive whole and in order, over plain HTTP and mutual TLS, on
one kept-alive connection, with the start of the body sent in the same write
as the request head (already buffered when the app reads it)."""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.extender_pki import ExtenderPKI, make_extender_pki
from scheduler_extender.tlsserve import LARGE_IO, Listener, ServeOptions, TLSFiles

SIZES = [0, 1, LARGE_IO - 1, LARGE_IO, LARGE_IO + 1, 3 * 1024 * 1024 + 7]


def echo_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The body read in one ``read(n)`` (as the extender does), answered with the
    body reversed (a reply as large as the request) and its digest in a header.
    A large read is a bytearray (tlsserve's reader), so the reply is made bytes."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    assert isinstance(body, bytes if length < LARGE_IO else bytearray)
    reply = bytes(body[::-1])
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(reply))),
            ("X-Body-Sha256", hashlib.sha256(body).hexdigest()),
        ],
    )
    return [reply]


def payload(size: int) -> bytes:
    block = bytes(range(251))  # not a power of two: misplaced chunks show
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ExtenderPKI:
    return make_extender_pki(Path(tmp_path_factory.mktemp("pki")))


@pytest.fixture(params=["plain", "tls"])
def served(request: pytest.FixtureRequest, pki: ExtenderPKI) -> Iterator[tuple[int, Any]]:
    tls = None
    ctx: ssl.SSLContext | None = None
    if request.param == "tls":
        tls = TLSFiles(
            str(pki.server_cert),
            str(pki.server_key),
            str(pki.client_ca),
            require_client_cert=True,
        )
        ctx = pki.client_context()
    listener = Listener(echo_app, ServeOptions(threads=2, keepalive_linger=0.05), tls).start()
    try:
        yield listener.port, ctx
    finally:
        listener.stop()


def connect(port: int, ctx: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if ctx is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)


def test_bodies_and_replies_of_every_size_arrive_whole(served: tuple[int, Any]) -> None:
    port, ctx = served
    conn = connect(port, ctx)
    try:
        for size in SIZES + SIZES[::-1]:  # both ways: no leftover bytes between requests
            body = payload(size)
            conn.request("POST", "/echo", body)
            r = conn.getresponse()
            got = r.read()
            assert r.status == 200
            assert r.getheader("X-Body-Sha256") == hashlib.sha256(body).hexdigest(), size
            assert got == body[::-1], size
    finally:
        conn.close()


def test_a_body_sent_with_its_head_in_one_write(served: tuple[int, Any]) -> None:
    """Part of the body is in the server's buffer when the app reads it."""
    port, ctx = served
    body = payload(LARGE_IO * 3 + 5)
    head = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock: socket.socket = (
        ctx.wrap_socket(raw, server_hostname="localhost") if ctx is not None else raw
    )
    try:
        sock.sendall(head + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        assert response.getheader("X-Body-Sha256") == hashlib.sha256(body).hexdigest()
        assert response.read() == body[::-1]
    finally:
        sock.close()
