"""Settings (flag > env > default) and the list+watch loop against a scripted
API (a fake of our own one-method HTTP port, not of the Kubernetes client)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcluster import objects as ex
from scheduler_extender import config
from scheduler_extender.store import KIND_CONFIGMAPS, KIND_NODES, Store
from scheduler_extender.watch import Reflector, Resource

TLS_ENV = {
    "TKE_EXTENDER_TLS_CERT_FILE": "/tls/tls.crt",
    "TKE_EXTENDER_TLS_KEY_FILE": "/tls/tls.key",
    "TKE_EXTENDER_CLIENT_CA_FILE": "/tls/client-ca.crt",
}


def test_defaults_env_and_flags() -> None:
    s = config.parse([], env=TLS_ENV)
    assert (s.port, s.filter_path, s.json_codec, s.kubeconfig) == (8443, "/filter", "auto", "")
    assert (s.health_port, s.insecure_http, s.max_body_bytes) == (8080, False, 64 << 20)
    assert (s.tls_cert_file, s.client_ca_file) == ("/tls/tls.crt", "/tls/client-ca.crt")
    s = config.parse(
        [], env={"TKE_EXTENDER_PORT": "9000", "KUBECONFIG": "/k", "TKE_EXTENDER_STALE_AFTER": "2.5",
                 "TKE_EXTENDER_INSECURE_HTTP": "true"}
    )
    assert (s.port, s.kubeconfig, s.stale_after, s.insecure_http) == (9000, "/k", 2.5, True)
    s = config.parse(
        ["--port", "9100", "--filter-path", "eni/filter", "--insecure-http"],
        env={"TKE_EXTENDER_PORT": "9000"},
    )
    assert (s.port, s.filter_path) == (9100, "/eni/filter")
    assert s.effective()["port"] == 9100


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--log-format", "xml"], {}),
        (["--json-codec", "orjson"], {}),
        (["--threads", "0"], {}),
        ([], {"TKE_EXTENDER_PORT": "eighty"}),
        ([], {}),  # no TLS files and no --insecure-http
        (["--tls-cert-file", "/c", "--tls-key-file", "/k"], {}),  # no client CA
        (["--insecure-http", "--tls-cert-file", "/c"], {}),
        ([], {"TKE_EXTENDER_INSECURE_HTTP": "maybe"}),
        (["--insecure-http", "--health-port", "9000", "--port", "9000"], {}),
        (["--insecure-http", "--read-timeout", "0"], {}),
    ],
)
def test_bad_settings_exit_with_usage(argv: list[str], env: dict[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        config.parse(argv, env=env)
    assert exc.value.code == 2


def test_missing_tls_files_say_what_to_set(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(["--tls-cert-file", "/c"], env={})
    err = capsys.readouterr().err
    assert "--tls-key-file, --client-ca-file not set" in err
    assert "--insecure-http serves plain HTTP, for local debugging only" in err


class Response:
    def __init__(
        self,
        status: int,
        body: bytes = b"",
        lines: list[bytes] | None = None,
        hold: threading.Event | None = None,
    ) -> None:
        self.status, self.data, self._lines, self._hold = status, body, lines or [], hold

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        for line in self._lines:  # split across chunks, like a real stream may be
            yield line[:5]
            yield line[5:] + b"\n"
        if self._hold is not None:
            self._hold.wait(5)

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


class ScriptedApi:
    """Answers GETs from a script of callables; records the queries."""

    def __init__(
        self,
        script: list[Callable[[list[tuple[str, str]]], Response]],
        *,
        block_at_end: bool = True,
    ) -> None:
        self.script = script
        self.block_at_end = block_at_end
        self.calls: list[dict[str, str]] = []
        self.done = threading.Event()
        self.idle = threading.Event()

    def __call__(
        self, path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> Response:
        self.calls.append(dict(query))
        if not self.script:
            self.done.set()
            if self.block_at_end:
                self.idle.wait(5)
            raise ConnectionError("script over")
        return self.script.pop(0)(query)


def page(items: list[dict[str, Any]], rv: str, token: str = "") -> Callable[..., Response]:
    meta = {"resourceVersion": rv, "continue": token}
    return lambda q: Response(200, json.dumps({"items": items, "metadata": meta}).encode())


def events(*evs: tuple[str, dict[str, Any]]) -> Callable[..., Response]:
    lines = [json.dumps({"type": t, "object": o}).encode() for t, o in evs]
    return lambda q: Response(200, lines=lines)


def node(name: str, zone: str, rv: str) -> dict[str, Any]:
    obj = ex.node(name, zone)
    obj["metadata"]["resourceVersion"] = rv
    return obj


def wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, "condition not met in 10 s"
        time.sleep(0.01)


def run(api: ScriptedApi, res: Resource, store: Store) -> Reflector:
    r = Reflector(store, api, res, page_size=2, watch_timeout=5, max_backoff=0.05)
    r.start()
    return r


def test_pages_watch_bookmark_gone_and_errors() -> None:
    store = Store(kinds=[KIND_NODES])
    api = ScriptedApi(
        [
            page([node("n1", "z1", "1"), node("n2", "z1", "2")], "5", token="t1"),
            page([node("n3", "z1", "3")], "5"),
            events(
                ("ADDED", node("n4", "z2", "6")),
                ("BOOKMARK", {"metadata": {"resourceVersion": "9"}}),
                ("MODIFIED", node("n1", "z9", "10")),
                ("DELETED", node("n2", "z1", "11")),
            ),
            events(("ERROR", {"code": 410, "message": "too old"})),  # → list again
            page([node("n1", "z9", "12")], "12"),
            lambda q: Response(500, json.dumps({"message": "etcd down"}).encode()),  # → backoff
            page([node("n7", "z7", "13")], "13"),
        ]
    )
    r = run(api, Resource(KIND_NODES, "/api/v1/nodes"), store)
    try:
        api.done.wait(10)
        wait_for(lambda: set(store.snapshot().nodes) == {"n7"})
    finally:
        api.idle.set()
        r.stop()
    calls = api.calls
    assert calls[0] == {"limit": "2"}
    assert calls[1] == {"limit": "2", "continue": "t1"}
    assert calls[2]["watch"] == "true" and calls[2]["resourceVersion"] == "5"
    assert calls[2]["allowWatchBookmarks"] == "true"
    assert calls[3]["resourceVersion"] == "11"  # after the bookmark and the events
    assert calls[4] == {"limit": "2"}  # 410: list again


def test_events_reach_snapshots_and_configmaps_are_filtered() -> None:
    store = Store(kinds=[KIND_CONFIGMAPS])
    other = {"metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {}}
    api = ScriptedApi(
        [
            page([other, ex.ipamd_configmap("subnet-a")], "1"),
            events(("MODIFIED", ex.ipamd_configmap("subnet-a", "subnet-b")), ("ADDED", other)),
        ]
    )
    res = Resource(
        KIND_CONFIGMAPS,
        "/api/v1/namespaces/kube-system/configmaps",
        ("tke-eni-ipamd", "tke-eni-ipamd-status"),
    )
    r = run(api, res, store)
    try:
        wait_for(lambda: store.snapshot().plan.config.subnet_ids == ("subnet-a", "subnet-b"))
        assert store.kind_states()[KIND_CONFIGMAPS].objects == 1
    finally:
        api.idle.set()
        r.stop()


def test_failures_mark_the_kind_down_and_keep_the_cache() -> None:
    store = Store(kinds=[KIND_NODES], stale_after=0.0)
    api = ScriptedApi([page([node("n1", "z1", "1")], "1")], block_at_end=False)  # watch fails
    r = run(api, Resource(KIND_NODES, "/api/v1/nodes"), store)
    try:
        wait_for(lambda: store.stale_kinds() == (KIND_NODES,))
        assert set(store.snapshot().nodes) == {"n1"}
    finally:
        api.idle.set()
        r.stop()


def test_missing_crd_names_the_fix() -> None:
    from scheduler_extender.watch import WatchError

    store = Store(kinds=["vpcips"])
    r = Reflector(store, ScriptedApi([]), Resource("vpcips", "/apis/x/v1/vpcips"))
    with pytest.raises(WatchError, match="CRD not installed"):
        r._doc(Response(404, json.dumps({"message": "not found"}).encode()))
