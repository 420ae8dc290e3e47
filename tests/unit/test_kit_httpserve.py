"""kit.httpserve: the one status server of the daemons (probes, several
registries, routes left out answer 404, a broken probe answers 500)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from kit.httpserve import StatusServer, split_address


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def registries() -> Iterator[tuple[CollectorRegistry, CollectorRegistry]]:
    own, cloud = CollectorRegistry(), CollectorRegistry()
    Counter("daemon_things_total", "things", registry=own).inc()
    Counter("tke_cloud_api_calls_total", "calls", ["action"], registry=cloud).labels("X").inc(2)
    yield own, cloud


def test_probes_and_every_registry(registries: tuple[CollectorRegistry, ...]) -> None:
    ready = {"ok": False}

    def boom() -> bool:
        raise RuntimeError("probe broke")

    srv = StatusServer(
        "127.0.0.1:0",
        registries=registries,
        healthy=lambda: True,
        ready=lambda: (ready["ok"], {"synced": ready["ok"]}),
    ).start()
    broken = StatusServer("127.0.0.1:0", healthy=boom).start()
    try:
        assert get(srv.port, "/healthz")[::2] == (200, "ok\n")
        code, ctype, body = get(srv.port, "/readyz")
        assert (code, ctype, json.loads(body)) == (503, "application/json", {"synced": False})
        ready["ok"] = True
        assert get(srv.port, "/readyz?verbose")[0] == 200
        code, _, text = get(srv.port, "/metrics")
        assert code == 200
        assert "daemon_things_total 1.0" in text
        assert 'tke_cloud_api_calls_total{action="X"} 2.0' in text
        assert get(srv.port, "/nope")[0] == 404
        assert get(broken.port, "/metrics")[0] == 404  # no registry given
        code, _, text = get(broken.port, "/healthz")
        assert code == 500 and "probe broke" in text
    finally:
        srv.stop()
        broken.stop()


def test_bad_address_is_refused() -> None:
    with pytest.raises(ValueError, match="expected host:port"):
        StatusServer("localhost")
    assert split_address(":9090") == ("0.0.0.0", 9090)
    assert split_address("[::1]:80") == ("::1", 80)


def test_dribbling_clients_are_cut_off_and_capped() -> None:
    """Clients that send a request line and then one header byte every 0.2 s
    (each read succeeds): the deadline on the whole request cuts them off, and
    over the connection cap a connection is closed at once; probes are still
    answered once they are gone. Bounded waits only."""
    srv = StatusServer(
        "127.0.0.1:0", healthy=lambda: True, read_timeout=1.0, max_connections=3
    ).start()
    stop = threading.Event()
    cut: list[bool] = []

    def dribble() -> None:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                while not stop.wait(0.2):
                    s.sendall(b"a")
                    s.settimeout(0.01)
                    with contextlib.suppress(TimeoutError):
                        if s.recv(1) == b"":
                            break  # the server closed it
                    s.settimeout(20)
            except OSError:
                pass
            cut.append(True)

    threads = [threading.Thread(target=dribble, daemon=True) for _ in range(5)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)  # each ends: cut off by the deadline or refused over the cap
        assert len(cut) == 5
        assert get(srv.port, "/healthz")[0] == 200
    finally:
        stop.set()
        srv.stop()
