"""Pytest fixtures for real local nodes (localnode; docs/node.md).

- ``node_factory`` (function): ``make(name, zone, control_plane, **Node kwargs)`` -> a started
  Node; every node it made is stopped at teardown (even when the test fails) and the
  shared fabric namespace removed; leftovers fail the test.
- ``node_cluster`` (session): a control plane with kube-scheduler and kwok nodes, for the
  real nodes to join.
- helpers: ``api``, ``wait_for``, ``pod_manifest``, ``wait_running``.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from localcluster.controlplane import ControlPlane
from localnode import netns
from localnode.kubeapi import api_request
from localnode.node import Node
from tests.fixtures_controlplane import start_or_fail

KWOK_NODES = 3
ENI_IP = "tke.cloud.tencent.com/eni-ip"
NETWORKS_ANNOTATION = "tke.cloud.tencent.com/networks"
T = TypeVar("T")


class NodeFactory:
    """``make(name, zone, control_plane, **kwargs)`` -> a started Node."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes: list[Node] = []
        self.fabrics: set[str] = set()

    def make(self, name: str, zone: str = "ap-guangzhou-3", control_plane: Any = None,
             start: bool = True, **kwargs: Any) -> Node:
        node = Node(name, zone, control_plane, self.base / name, **kwargs)
        self.nodes.append(node)
        if node.node_ip:
            self.fabrics.add(node.fabric)
        if start:
            node.start()
        return node

    def close(self) -> list[str]:
        problems: list[str] = []
        for node in reversed(self.nodes):
            problems += node.stop()
        for fabric in self.fabrics:
            try:
                netns.delete(fabric)
            except Exception as exc:
                problems.append(f"fabric {fabric}: {exc}")
        return problems


# short paths: unix socket paths (containerd, device plugins) must stay under 108 bytes
E2E_BASE = Path("/var/lib/tke-e2e")


@pytest.fixture
def node_factory() -> Iterator[NodeFactory]:
    base = E2E_BASE / secrets.token_hex(3)
    factory = NodeFactory(base)
    try:
        yield factory
    finally:
        problems = factory.close()
        if not problems:
            shutil.rmtree(base, ignore_errors=True)
        assert not problems, f"node clean-up left things behind (kept {base}): {problems}"


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-scheduler + kwok (``KWOK_NODES`` fake nodes)."""
    cp = ControlPlane(Path(tempfile.mkdtemp(prefix="tke-node-cp-")), with_scheduler=True,
                      kwok_nodes=KWOK_NODES)
    try:
        yield start_or_fail(cp)
    finally:
        cp.stop()
        shutil.rmtree(cp.workdir, ignore_errors=True)


def api(cp: ControlPlane, path: str, method: str = "GET",
        body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    return api_request(cp.kubeconfig, cp.server, path, method, body)


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 120.0) -> T:
    """Poll ``fn`` until it returns something truthy (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def pod_manifest(name: str, image: str = "busybox", command: list[str] | None = None,
                 node_selector: dict[str, str] | None = None,
                 eni_ip: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if command is not None:
        container["command"] = command
    annotations: dict[str, str] = {}
    if eni_ip:
        container["resources"] = {"requests": {ENI_IP: "1"}, "limits": {ENI_IP: "1"}}
        annotations[NETWORKS_ANNOTATION] = "tke-route-eni"
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 1,
                            "automountServiceAccountToken": False}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": spec}


def wait_running(cp: ControlPlane, name: str, timeout: float = 120.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pod = api(cp, f"/api/v1/namespaces/default/pods/{name}")
        return pod if pod and pod["status"].get("phase") == "Running" else None
    return wait_for(f"pod {name} Running", check, timeout)
