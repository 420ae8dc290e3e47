"""kit.httpserve: the one status server of the daemons (probes, several
registries, routes left out answer 404, a broken probe answers 500)."""

from __future__ import annotations

import json
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
