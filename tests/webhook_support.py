"""Helpers shared by the webhook tests: pods, AdmissionReview bodies, a JSONPatch
applier (what the API server does with the webhook's patch)."""

from __future__ import annotations

import copy
import json
from typing import Any


def apply_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """A small RFC 6902 'add' applier (what the API server does with our patch)."""
    out = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add", op
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        node: Any = out
        for t in tokens[:-1]:
            node = node[int(t)] if isinstance(node, list) else node[t]
        assert isinstance(node, dict), f"parent of {op['path']} is not an object"
        node[tokens[-1]] = op["value"]
    return out


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "p", "namespace": "default"},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}
    if annotations is not None:
        body["metadata"]["annotations"] = annotations
    return body


def review_body(obj: dict[str, Any], *, kind: str = "Pod", group: str = "",
                resource: str = "pods", operation: str = "CREATE", uid: str = "u-1") -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": group, "version": "v1", "kind": kind},
                    "resource": {"group": group, "version": "v1", "resource": resource},
                    "namespace": "default", "operation": operation, "object": obj,
                    "userInfo": {"username": "tester"}, "dryRun": False}}).encode()
