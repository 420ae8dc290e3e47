"""Our CRDs (deploy/crds/) and ConfigMaps into a control plane, through the
``kubernetes`` client (the objects are the wire's plain dicts)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "deploy" / "crds"


def apply_crds(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                ext.create_custom_resource_definition(doc)
                names.append(doc["metadata"]["name"])
    assert names, f"no CRD manifests in {CRDS}"
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in ((crd.status and crd.status.conditions) or [])}
            if conditions.get("Established") == "True":
                break
            assert time.monotonic() < deadline, f"CRD {name} not established: {conditions}"
            time.sleep(0.2)


def put_configmap(core: client.CoreV1Api, obj: dict[str, Any]) -> None:
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    try:
        core.create_namespaced_config_map(namespace, obj)  # type: ignore[arg-type]
    except client.ApiException as exc:
        if exc.status != 409:
            raise
        core.replace_namespaced_config_map(name, namespace, obj)  # type: ignore[arg-type]
