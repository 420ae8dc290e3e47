"""The real kube-apiserver through the `kubernetes` Python client: CRUD, watch, CRDs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from localcluster.controlplane import ControlPlane
from localcluster.fakenodes import FakeNode


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api_client:
        yield api_client


def _watch_until(
    list_fn: Callable[..., Any],
    name: str,
    predicate: Callable[[str, Any], bool],
    start: Callable[[], None],
    **kwargs: Any,
) -> list[str]:
    """Start a watch, run ``start`` once the watch is open, return event types seen for ``name``
    until ``predicate(event_type, obj)`` holds (or the server-side timeout ends the watch)."""
    seen: list[str] = []
    w = watch.Watch()
    listing = list_fn(**kwargs)
    version = listing.metadata.resource_version
    opened = threading.Event()

    def later() -> None:
        opened.wait()
        start()

    t = threading.Thread(target=later)
    t.start()
    try:
        stream = w.stream(list_fn, resource_version=version, timeout_seconds=60, **kwargs)
        opened.set()
        for event in stream:
            obj = event["object"]
            if obj.metadata.name != name:
                continue
            seen.append(event["type"])
            if predicate(event["type"], obj):
                w.stop()
    finally:
        opened.set()
        t.join()
    return seen


def test_node_create_read_watch(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    node = FakeNode("smoke-node", allocatable={"tke.cloud.tencent.com/eni-ip": "5"}).manifest()

    def create_then_delete() -> None:
        core.create_node(node)
        core.delete_node("smoke-node")

    seen = _watch_until(
        core.list_node, "smoke-node", lambda t, _o: t == "DELETED", create_then_delete
    )
    assert seen[0] == "ADDED" and seen[-1] == "DELETED"
    core.create_node(node)
    try:
        got = core.read_node("smoke-node")
        assert got.status.allocatable["tke.cloud.tencent.com/eni-ip"] == "5"
        assert got.metadata.labels["type"] == "kwok"
    finally:
        core.delete_node("smoke-node")


def test_pod_create_read_watch(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "smoke-pod",
            "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"},
        },
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {
                        "requests": {"tke.cloud.tencent.com/eni-ip": "1"},
                        "limits": {"tke.cloud.tencent.com/eni-ip": "1"},
                    },
                }
            ]
        },
    }

    def create_then_label() -> None:
        core.create_namespaced_pod("default", pod)
        core.patch_namespaced_pod("smoke-pod", "default", {"metadata": {"labels": {"x": "y"}}})

    seen = _watch_until(
        core.list_namespaced_pod,
        "smoke-pod",
        lambda t, o: t == "MODIFIED" and (o.metadata.labels or {}).get("x") == "y",
        create_then_label,
        namespace="default",
    )
    assert seen == ["ADDED", "MODIFIED"]
    try:
        got = core.read_namespaced_pod("smoke-pod", "default")
        limits = got.spec.containers[0].resources.limits
        assert limits == {"tke.cloud.tencent.com/eni-ip": "1"}
        assert got.spec.node_name is None  # no scheduler in the shared control plane
    finally:
        core.delete_namespaced_pod("smoke-pod", "default", grace_period_seconds=0)


def test_configmap_create_read_watch(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "smoke-ns"}})
    cm = {
        "metadata": {"name": "tke-eni-ipamd"},
        "data": {
            "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaa:subnet-bbbb",
            "TKE_ENI_IPAMD_VPC_ID": "vpc-1234",
        },
    }

    def create_then_update() -> None:
        core.create_namespaced_config_map("smoke-ns", cm)
        core.patch_namespaced_config_map(
            "tke-eni-ipamd", "smoke-ns", {"data": {"TKE_ENI_IPAMD_SUBNET_ID": "subnet-cccc"}}
        )

    seen = _watch_until(
        core.list_namespaced_config_map,
        "tke-eni-ipamd",
        lambda t, o: o.data["TKE_ENI_IPAMD_SUBNET_ID"] == "subnet-cccc",
        create_then_update,
        namespace="smoke-ns",
    )
    assert seen == ["ADDED", "MODIFIED"]
    got = core.read_namespaced_config_map("tke-eni-ipamd", "smoke-ns")
    assert got.data == {
        "TKE_ENI_IPAMD_SUBNET_ID": "subnet-cccc",
        "TKE_ENI_IPAMD_VPC_ID": "vpc-1234",
    }


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "smokeclaims.smoke.tke.cloud.tencent.com"},
    "spec": {
        "group": "smoke.tke.cloud.tencent.com",
        "scope": "Namespaced",
        "names": {
            "plural": "smokeclaims",
            "singular": "smokeclaim",
            "kind": "SmokeClaim",
            "shortNames": ["sclaim"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "ip": {"type": "string"},
                                    "policy": {"type": "string", "enum": ["Never", "Immutable"]},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_apply_and_use(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(CRD)
    deadline = time.monotonic() + 60
    while True:
        crd = ext.read_custom_resource_definition(CRD["metadata"]["name"])
        conditions = crd.status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        assert time.monotonic() < deadline, f"CRD never Established: {conditions}"
        time.sleep(0.1)
    custom = client.CustomObjectsApi(api)
    group, version, plural = "smoke.tke.cloud.tencent.com", "v1", "smokeclaims"
    # A freshly established CRD can take a moment to be served by discovery-based paths.
    deadline = time.monotonic() + 60
    while True:
        try:
            custom.create_namespaced_custom_object(
                group,
                version,
                "default",
                plural,
                {
                    "apiVersion": f"{group}/{version}",
                    "kind": "SmokeClaim",
                    "metadata": {"name": "web-0"},
                    "spec": {"ip": "10.0.0.7", "policy": "Never"},
                },
            )
            break
        except client.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    got = custom.get_namespaced_custom_object(group, version, "default", plural, "web-0")
    assert got["spec"] == {"ip": "10.0.0.7", "policy": "Never"}
    # The schema is enforced by the real apiserver.
    with pytest.raises(client.ApiException) as bad:
        custom.create_namespaced_custom_object(
            group,
            version,
            "default",
            plural,
            {
                "apiVersion": f"{group}/{version}",
                "kind": "SmokeClaim",
                "metadata": {"name": "web-1"},
                "spec": {"policy": "Sometimes"},
            },
        )
    assert bad.value.status == 422
