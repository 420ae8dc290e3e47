"""The real kube-scheduler calls an extender wired through the control-plane fixture."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client, watch

from localcluster.fakenodes import FakeNode
from localcluster.scheduler_config import ENI_IP_RESOURCE, SchedulerConfig, eni_ip_extender
from tests.fixtures_controlplane import ControlPlaneFactory

ALLOWED, REFUSED = "kwok-allowed", "kwok-refused"


class RecordingExtender:
    """A tiny extender: records every call, lets only ALLOWED through the filter."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with recorder.lock:
                    recorder.calls.append((self.path, body))
                if self.path == "/tke/filter":
                    names = body.get("NodeNames") or []
                    reply: dict[str, Any] = {
                        "NodeNames": [n for n in names if n == ALLOWED],
                        "FailedNodes": {
                            n: "refused by the test extender" for n in names if n != ALLOWED
                        },
                        "Error": "",
                    }
                else:
                    reply = {"Error": f"unexpected verb {self.path}"}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tke"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def filter_calls_for(self, pod: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                b
                for p, b in self.calls
                if p == "/tke/filter" and b["Pod"]["metadata"]["name"] == pod
            ]


@pytest.fixture
def extender() -> Iterator[RecordingExtender]:
    ext = RecordingExtender()
    ext.thread.start()
    try:
        yield ext
    finally:
        ext.server.shutdown()
        ext.server.server_close()
        ext.thread.join()


def _pod(name: str, eni_ip: bool) -> dict[str, Any]:
    resources = (
        {"requests": {ENI_IP_RESOURCE: "1"}, "limits": {ENI_IP_RESOURCE: "1"}} if eni_ip else {}
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]},
    }


def _wait_bound(core: client.CoreV1Api, name: str) -> str:
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        timeout_seconds=120,
    ):
        node: str | None = event["object"].spec.node_name
        if node:
            w.stop()
            return node
    pod = core.read_namespaced_pod(name, "default")
    raise AssertionError(f"pod {name} not bound after 120s: {pod.status}")


def test_scheduler_calls_extender_and_binds_to_allowed_node(
    control_plane_factory: ControlPlaneFactory, extender: RecordingExtender
) -> None:
    eni = {ENI_IP_RESOURCE: "10"}
    cp = control_plane_factory(
        with_scheduler=True,
        scheduler_config=SchedulerConfig(extenders=(eni_ip_extender(extender.url),)),
        kwok_nodes=[FakeNode(ALLOWED, allocatable=eni), FakeNode(REFUSED, allocatable=eni)],
    )
    config = (cp.workdir / "kube-scheduler.yaml").read_text()
    assert "managedResources" in config and "nodeCacheCapable: true" in config

    with contextlib.closing(cp.api_client()) as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_pod("default", _pod("eni-pod", eni_ip=True))
        assert _wait_bound(core, "eni-pod") == ALLOWED

        calls = extender.filter_calls_for("eni-pod")
        assert calls, f"the scheduler never called the extender: {extender.calls}"
        first = calls[0]
        # nodeCacheCapable: names only, both nodes passed the in-tree filters.
        assert first["Nodes"] is None
        assert sorted(first["NodeNames"]) == [ALLOWED, REFUSED]
        limits = first["Pod"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits == {ENI_IP_RESOURCE: "1"}

        # managedResources: a pod that asks for no eni-ip never reaches the extender.
        core.create_namespaced_pod("default", _pod("plain-pod", eni_ip=False))
        assert _wait_bound(core, "plain-pod") in (ALLOWED, REFUSED)
        assert extender.filter_calls_for("plain-pod") == []
