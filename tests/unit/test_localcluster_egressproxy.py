"""The apiserver's egress proxy: CONNECT parsing, errors, and a tunnel to a local server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from localcluster.egressproxy import egress_selector_config, parse_connect, serve


def test_connect_heads_are_parsed_and_bad_ones_refused() -> None:
    assert parse_connect(b"CONNECT 10.0.3.2:10250 HTTP/1.1\r\nHost: x\r\n\r\n") == (
        "10.0.3.2", 10250)
    assert parse_connect(b"CONNECT [fd00::1]:443 HTTP/1.1\r\n\r\n") == ("fd00::1", 443)
    for bad in (b"GET / HTTP/1.1\r\n\r\n", b"CONNECT host HTTP/1.1\r\n\r\n",
                b"CONNECT :80 HTTP/1.1\r\n\r\n", b"CONNECT a:b HTTP/1.1\r\n\r\n", b""):
        with pytest.raises(ValueError):
            parse_connect(bad)


def test_selector_config_names_the_socket() -> None:
    text = egress_selector_config("/x/egress.sock")
    assert "name: cluster" in text and "proxyProtocol: HTTPConnect" in text
    assert "udsName: /x/egress.sock" in text


def test_a_tunnel_reaches_the_target_and_a_bad_request_gets_400(tmp_path: Path) -> None:
    async def scenario() -> tuple[bytes, bytes, bytes]:
        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"echo:" + await r.readline())
            await w.drain()
            w.close()
        target = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = target.sockets[0].getsockname()[1]
        path = str(tmp_path / "egress.sock")
        proxy = asyncio.create_task(serve(path))
        for _ in range(100):
            if Path(path).exists():
                break
            await asyncio.sleep(0.02)
        r, w = await asyncio.open_unix_connection(path)
        w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        status = await r.readuntil(b"\r\n\r\n")
        w.write(b"hello\n")
        answer = await r.read()
        w.close()
        r2, w2 = await asyncio.open_unix_connection(path)
        w2.write(b"GET / HTTP/1.1\r\n\r\n")
        refused = await r2.read()
        w2.close()
        proxy.cancel()
        target.close()
        return status, answer, refused

    status, answer, refused = asyncio.run(scenario())
    assert status.startswith(b"HTTP/1.1 200"), status
    assert answer == b"echo:hello\n"
    assert refused.startswith(b"HTTP/1.1 400"), refused
