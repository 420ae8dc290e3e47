"""The extender over real HTTP (its server in --insecure-http mode on loopback;
tests/integration/test_extender_tls.py covers mutual TLS): exact wire shapes in
both node modes, bad input → 400 and oversize → 413 with a message, health,
readiness, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from localcluster import objects as ex
from scheduler_extender.app import create_app
from scheduler_extender.cli import ServerThread
from scheduler_extender.config import Settings
from scheduler_extender.store import (
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_PODS,
    KIND_VPCENIS,
    KIND_VPCIPS,
    Store,
)

GZ3, GZ4 = "ap-guangzhou-3", "ap-guangzhou-4"
MAX_BODY = 1024 * 1024
FILTER_KEYS = {"Nodes", "NodeNames", "FailedNodes", "FailedAndUnresolvableNodes", "Error"}
NODES = [
    ex.node("a1", GZ3, full=True),
    ex.node("a2", GZ3, full=True),
    ex.node("b1", GZ4, full=True),
    ex.node("b2", GZ4, full=True),
]


def seeded_store() -> Store:
    store = Store()
    store.replace(KIND_NODES, NODES)
    store.replace(KIND_VPCIPS, [ex.vpc_ip("10.0.3.5", "a2")])
    store.replace(KIND_VPCENIS, [])
    store.replace(KIND_PODS, [])
    store.replace(KIND_CLAIMS, [ex.claim("default", "db-0", "10.0.4.9", zone=GZ4)])
    store.replace(
        KIND_CONFIGMAPS,
        [ex.ipamd_configmap("subnet-a"), ex.status_configmap(ex.subnet("subnet-a", GZ3))],
    )
    return store


class Extender:
    def __init__(self, store: Store, **settings: Any) -> None:
        self.store = store
        self.settings = Settings(
            host="127.0.0.1", port=0, max_body_bytes=MAX_BODY, insecure_http=True, **settings
        )
        self.server = ServerThread(create_app(store, self.settings), self.settings)
        self.session = requests.Session()

    def post(self, path: str, body: bytes | Iterator[bytes] | Any) -> requests.Response:
        data = body if isinstance(body, bytes | Iterator) else json.dumps(body).encode()
        return self.session.post(self.server.url + path, data=data, timeout=30)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.server.url + path, timeout=30)

    def close(self) -> None:
        self.session.close()
        self.server.stop()


@pytest.fixture(params=["msgspec", "stdlib"])
def extender(request: pytest.FixtureRequest) -> Iterator[Extender]:
    e = Extender(seeded_store(), json_codec=request.param)
    try:
        yield e
    finally:
        e.close()


def test_filter_node_names_exact_shape(extender: Extender) -> None:
    r = extender.post("/filter", ex.filter_args(ex.pod(), ["a1", "a2", "b1", "ghost"]))
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) == FILTER_KEYS
    assert body["Nodes"] is None
    assert body["NodeNames"] == ["a1", "a2"]
    assert body["Error"] == ""
    assert set(body["FailedAndUnresolvableNodes"]) == {"b1"}
    assert (
        "zone ap-guangzhou-4 has no subnet in ConfigMap kube-system/tke-eni-ipamd"
        in (body["FailedAndUnresolvableNodes"]["b1"])
    )
    assert set(body["FailedNodes"]) == {"ghost"}


def test_filter_full_nodes_echoes_the_node_objects(extender: Extender) -> None:
    r = extender.post("/filter", ex.filter_args(ex.pod(), nodes=NODES))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == FILTER_KEYS
    assert body["Nodes"] == {"metadata": {}, "items": NODES[:2]}  # unchanged objects
    assert body["NodeNames"] == ["a1", "a2"]
    assert set(body["FailedAndUnresolvableNodes"]) == {"b1", "b2"}


def test_filter_all_rejected_still_returns_a_list(extender: Extender) -> None:
    for args in (
        ex.filter_args(ex.pod(), ["b1", "b2"]),
        ex.filter_args(ex.pod(), nodes=NODES[2:]),
        ex.filter_args(ex.pod(), []),
    ):
        body = extender.post("/filter", args).json()
        assert body["NodeNames"] == []
        if body["Nodes"] is not None:
            assert body["Nodes"]["items"] == []


def test_static_pod_outside_its_zone_is_unresolvable(extender: Extender) -> None:
    body = extender.post(
        "/filter", ex.filter_args(ex.pod("db-0", static=True), ["a1", "b1"])
    ).json()
    assert body["NodeNames"] == ["b1"]
    assert (
        "static IP 10.0.4.9 (VpcIPClaim default/db-0) is in zone ap-guangzhou-4"
        in (body["FailedAndUnresolvableNodes"]["a1"])
    )


def test_prioritize_shape_both_modes(extender: Extender) -> None:
    for args in (
        ex.filter_args(ex.pod(), ["a1", "a2", "ghost"]),
        ex.filter_args(ex.pod(), nodes=NODES[:2]),
    ):
        r = extender.post("/prioritize", args)
        assert r.status_code == 200
        body = r.json()
        assert isinstance(body, list)
        for entry in body:
            assert set(entry) == {"Host", "Score"}
            assert isinstance(entry["Score"], int)
            assert 0 <= entry["Score"] <= 10
        scores = {e["Host"]: e["Score"] for e in body}
        assert scores["a2"] > scores["a1"]  # a2 holds a warm IP


def test_keys_are_matched_case_insensitively(extender: Extender) -> None:
    body = extender.post("/filter", {"pod": ex.pod(), "nodenames": ["a1"]}).json()
    assert body["NodeNames"] == ["a1"]


BAD = [
    ("malformed JSON", b'{"Pod": {', "not valid JSON"),
    ("not UTF-8", b"\xff\xfe\x00garbage", "not valid JSON"),
    ("JSON array", b"[]", "ExtenderArgs: expected"),
    ("missing Pod", {"NodeNames": ["a1"]}, "ExtenderArgs.Pod: missing"),
    ("Pod is a string", {"Pod": "web-0", "NodeNames": []}, "Pod: expected a JSON object"),
    ("Pod without name", {"Pod": {"metadata": {}}, "NodeNames": []}, "Pod.metadata.name"),
    ("NodeNames wrong type", {"Pod": ex.pod(), "NodeNames": "a1"}, "NodeNames"),
    ("NodeNames of numbers", {"Pod": ex.pod(), "NodeNames": [1, 2]}, "NodeNames"),
    ("Nodes wrong type", {"Pod": ex.pod(), "Nodes": []}, "ExtenderArgs.Nodes"),
    ("Nodes.items wrong type", {"Pod": ex.pod(), "Nodes": {"items": {}}}, "Nodes.items"),
    (
        "node without name",
        {"Pod": ex.pod(), "Nodes": {"items": [{"metadata": {}}]}},
        "Nodes.items[0].metadata.name",
    ),
    (
        "containers wrong type",
        {"Pod": {"metadata": {"name": "p"}, "spec": {"containers": {}}}, "NodeNames": []},
        "Pod.spec.containers",
    ),
    (
        "eni-ip not a number",
        {
            "Pod": {
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {"resources": {"requests": {"tke.cloud.tencent.com/eni-ip": "one"}}}
                    ]
                },
            },
            "NodeNames": [],
        },
        "integer quantity",
    ),
    ("empty body", b"", "empty request body"),
    ("deep nesting", b'{"Pod":' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
    (
        "deep nesting elsewhere",
        b'{"x":' + b"[" * 100000 + b"]" * 100000 + b"}",
        "nested too deeply",
    ),
]


@pytest.mark.parametrize(("body", "needle"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("verb", ["/filter", "/prioritize"])
def test_bad_input_is_400_with_a_message(
    extender: Extender, verb: str, body: bytes | Any, needle: str
) -> None:
    r = extender.post(verb, body)
    assert r.status_code == 400, r.text
    error = r.json()["Error"]
    assert needle.lower() in error.lower()
    assert error.startswith("bad request: ")


def test_huge_bodies_are_413(extender: Extender) -> None:
    big = b'{"Pod": {}, "NodeNames": ["' + b"x" * (MAX_BODY + 10) + b'"]}'
    r = extender.post("/filter", big)
    assert r.status_code == 413
    assert r.json()["Error"] == (
        f"tke-eni-ip-scheduler: request body of {len(big)} bytes exceeds the limit of "
        f"{MAX_BODY} bytes (--max-body-bytes; the shipped configuration sends node names "
        "only: nodeCacheCapable: true)"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        for _ in range(4):
            yield b" " * (MAX_BODY // 2)

    r = extender.post("/filter", chunks())
    assert r.status_code == 413
    assert "request body (chunked) exceeds the limit" in r.json()["Error"]
    # far over the limit (the server stops draining at twice the limit): still our 413
    r = extender.post("/prioritize", b" " * (MAX_BODY * 8))
    assert r.status_code == 413, r.text
    assert "exceeds the limit of 1048576 bytes (--max-body-bytes" in r.json()["Error"]
    # the next request on a fresh connection is answered as usual
    assert extender.post("/filter", ex.filter_args(ex.pod(), ["a1"])).status_code == 200
    text = extender.get("/metrics").text
    assert 'tke_eni_extender_requests_total{code="413",verb="filter"} 2.0' in text


def test_chunked_body_within_limit(extender: Extender) -> None:
    payload = ex.filter_args(ex.pod(), ["a1"])

    def chunks() -> Iterator[bytes]:
        yield payload[:10]
        yield payload[10:]

    r = extender.post("/filter", chunks())
    assert r.status_code == 200
    assert r.json()["NodeNames"] == ["a1"]


def test_custom_paths() -> None:
    e = Extender(seeded_store(), filter_path="/eni/filter", prioritize_path="/eni/prioritize")
    try:
        assert e.post("/eni/filter", ex.filter_args(ex.pod(), ["a1"])).json()["NodeNames"] == ["a1"]
        assert e.post("/eni/prioritize", ex.filter_args(ex.pod(), ["a1"])).status_code == 200
        assert e.post("/filter", ex.filter_args(ex.pod(), ["a1"])).status_code == 404
    finally:
        e.close()


def test_before_sync_not_ready_and_filter_says_why() -> None:
    store = Store()
    store.replace(KIND_NODES, NODES)
    e = Extender(store)
    try:
        assert e.get("/healthz").status_code == 200
        r = e.get("/readyz")
        assert r.status_code == 503
        assert "vpcips" in r.text
        body = e.post("/filter", ex.filter_args(ex.pod(), ["a1"])).json()
        assert body["NodeNames"] == []
        assert "caches not synced" in body["Error"]
        for kind in (KIND_VPCIPS, KIND_VPCENIS, KIND_CLAIMS, KIND_CONFIGMAPS, KIND_PODS):
            store.replace(kind, [])
        assert e.get("/readyz").status_code == 200
    finally:
        e.close()


def test_stale_cache_still_answers_and_metrics_say_so() -> None:
    now = [1000.0]
    store = Store(stale_after=30, clock=lambda: now[0])
    seeded = seeded_store()
    for kind in store.kinds:
        store.watch_up(kind)
    store.replace(KIND_NODES, NODES)
    for kind in (KIND_VPCIPS, KIND_VPCENIS, KIND_CLAIMS, KIND_PODS):
        store.replace(kind, [])
    store.replace(KIND_CONFIGMAPS, list(seeded._maps.values()))
    e = Extender(store)
    try:
        store.watch_down(KIND_VPCIPS)
        now[0] += 31
        r = e.post("/filter", ex.filter_args(ex.pod(), ["a1"]))
        assert r.status_code == 200
        assert r.json()["NodeNames"] == ["a1"]
        assert "stale: vpcips" in e.get("/readyz").text
        text = e.get("/metrics").text
        assert 'tke_eni_extender_cache_stale{kind="vpcips"} 1.0' in text
        assert 'tke_eni_extender_cache_stale{kind="nodes"} 0.0' in text
        assert 'tke_eni_extender_stale_answers_total{kind="vpcips",verb="filter"} 1.0' in text
    finally:
        e.close()


def test_metrics_count_requests_and_decisions(extender: Extender) -> None:
    extender.post("/filter", ex.filter_args(ex.pod(), ["a1", "a2", "b1", "ghost"]))
    extender.post("/filter", b"nope")
    extender.post("/prioritize", ex.filter_args(ex.pod(), ["a1"]))
    text = extender.get("/metrics").text
    assert 'tke_eni_extender_requests_total{code="200",verb="filter"} 1.0' in text
    assert 'tke_eni_extender_requests_total{code="400",verb="filter"} 1.0' in text
    assert 'tke_eni_extender_requests_total{code="200",verb="prioritize"} 1.0' in text
    assert 'tke_eni_extender_filter_decisions_total{reason="ok",result="passed"} 2.0' in text
    assert (
        'tke_eni_extender_filter_decisions_total{reason="zone-no-subnet",result="unresolvable"} 1.0'
        in text
    )
    assert (
        'tke_eni_extender_filter_decisions_total{reason="unknown-node",result="failed"} 1.0' in text
    )
    assert 'tke_eni_extender_request_duration_seconds_bucket{le="0.005",verb="filter"}' in text
    assert 'tke_eni_extender_cache_objects{kind="nodes"} 4.0' in text
