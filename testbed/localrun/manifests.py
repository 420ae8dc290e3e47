"""deploy/ as the harness uses it: the kustomize build, the guide's examples, and a
container's process (argv + environment) as the kubelet would start it."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from localcluster.binaries import SETUP_STEP, bin_dir

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
EXAMPLES = DEPLOY / "examples"
_VAR = re.compile(r"\$\((\w+)\)")


class ManifestError(RuntimeError):
    """deploy/ could not be built or a manifest lacks what the harness needs."""


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomize_build(directory: Path = DEPLOY) -> list[dict[str, Any]]:
    exe = bin_dir() / "kustomize"
    if not os.access(exe, os.X_OK):
        raise ManifestError(f"kustomize not found at {exe}: run {SETUP_STEP}")
    proc = subprocess.run([str(exe), "build", str(directory)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise ManifestError(f"kustomize build {directory} failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise ManifestError(f"{kind}/{name} not in the manifests")


def set_container_arg(obj: dict[str, Any], flag: str, value: str) -> None:
    """Set ``flag value`` in every container's args of a workload (what editing a
    deploy/knobs patch does); a flag not there is appended."""
    for c in containers(obj):
        args = [str(a) for a in c.get("args") or []]
        for i, a in enumerate(args):
            if a == flag and i + 1 < len(args):
                args[i + 1] = value
                break
            if a.startswith(flag + "="):
                args[i] = f"{flag}={value}"
                break
        else:
            args += [flag, value]
        c["args"] = args


def scheduler_config(extender_url: str,
                     tls_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """deploy/'s KubeSchedulerConfiguration with the extender at ``extender_url`` (and
    ``tls_config``'s local files in place of the operator's certificate paths)."""
    path = DEPLOY / "scheduler-extender" / "kube-scheduler-config.yaml"
    docs = [d for d in load_docs(path) if d.get("kind") == "KubeSchedulerConfiguration"]
    if not docs:
        raise ManifestError(f"no KubeSchedulerConfiguration in {path}")
    cfg = copy.deepcopy(docs[0])
    cfg.pop("clientConnection", None)  # filled in by localcluster
    for ext in cfg.get("extenders") or []:
        ext["urlPrefix"] = extender_url
        if tls_config is not None:
            ext["tlsConfig"] = dict(tls_config)
    return dict(cfg)


def examples() -> dict[str, dict[str, Any]]:
    """The guide's workloads: {"nginx": Deployment, "busybox": StatefulSet, "busybox-svc":
    its headless Service}."""
    nginx = find(load_docs(EXAMPLES / "nginx-deployment.yaml"), "Deployment", "nginx")
    sts_docs = load_docs(EXAMPLES / "busybox-statefulset.yaml")
    return {"nginx": nginx, "busybox": find(sts_docs, "StatefulSet", "busybox"),
            "busybox-svc": find(sts_docs, "Service", "busybox")}


def containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, others stay as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _configmap(objs: list[dict[str, Any]], namespace: str, name: str) -> dict[str, str] | None:
    for o in objs:
        meta = o["metadata"]
        if o["kind"] == "ConfigMap" and meta["name"] == name and meta.get("namespace") == namespace:
            return dict(o.get("data") or {})
    return None


def container_process(objs: list[dict[str, Any]], obj: Mapping[str, Any],
                      c: Mapping[str, Any], downward: Mapping[str, str]
                      ) -> tuple[list[str], dict[str, str]]:
    """(argv after the program name, environment) the container's program gets: env in
    order with $(VAR) expansion, the downward API from ``downward`` (fieldPath -> value),
    ConfigMaps from ``objs``; optional Secrets absent (a required one is an error)."""
    ns = obj["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for ref in c.get("envFrom") or []:
        if "configMapRef" in ref:
            data = _configmap(objs, ns, ref["configMapRef"]["name"])
            if data is None and not ref["configMapRef"].get("optional"):
                raise ManifestError(f"envFrom ConfigMap {ref} missing")
            env.update(data or {})
        elif not ref.get("secretRef", {}).get("optional"):
            raise ManifestError(f"required Secret in envFrom: {ref}")
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        src = e.get("valueFrom") or {}
        if "fieldRef" in src:
            env[e["name"]] = downward[src["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in src:
            key = src["configMapKeyRef"]
            data = _configmap(objs, ns, key["name"]) or {}
            if key["key"] in data:
                env[e["name"]] = data[key["key"]]
            elif not key.get("optional"):
                raise ManifestError(f"{e['name']}: {key} missing")
        elif not src.get("secretKeyRef", {}).get("optional"):
            raise ManifestError(f"required Secret: {e}")
    words = list(c.get("command") or [])[1:] + list(c.get("args") or [])
    return [expand(str(w), env) for w in words], env
