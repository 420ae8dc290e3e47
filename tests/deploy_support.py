"""Helpers shared by the deploy/ tests: the real kustomize, the manifests, the
console scripts, server-side apply to the real kube-apiserver."""

from __future__ import annotations

import configparser
import functools
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from localcluster.binaries import SETUP_STEP, bin_dir

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
VENV_BIN = ROOT / ".venv" / "bin"


def _pin(name: str, default: str) -> str:
    """A pin from hack/k8s/versions.env (the set-up builds what it says)."""
    for line in (ROOT / "hack" / "k8s" / "versions.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return default


#: v5.6.0: the kustomize that kubectl v1.33 embeds (k8s.io/kubectl v0.33 go.mod), so the
#: build is what `kubectl apply -k deploy/` does with our pinned Kubernetes.
KUSTOMIZE_VERSION = _pin("KUSTOMIZE_VERSION", "v5.6.0")
#: apiVersion groups of files that are not API objects (kustomize input, scheduler config).
NOT_API = ("kustomize.config.k8s.io", "kubescheduler.config.k8s.io")
#: Env var prefixes of our settings: a name with one of them must be a real setting.
SETTING_PREFIXES = ("TKE_ENI_AGENT_", "TKE_ENI_DP_", "TKE_IPAMD_", "TKE_EXTENDER_", "TKE_CLOUD_",
                    "TKE_WEBHOOK_")
IMAGE = "tke-vpc-cni"
WORKLOAD_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "Job", "CronJob", "Pod")


# --- helpers ---------------------------------------------------------------------------------


def yaml_files(root: Path | None = None) -> list[Path]:
    root = DEPLOY if root is None else root
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def group_of(obj: dict[str, Any]) -> str:
    api_version = str(obj.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def kustomize_bin() -> Path:
    path = bin_dir() / "kustomize"
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"kustomize not found at {path}: run {SETUP_STEP} (it builds "
            f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION} with the pinned Go)",
            pytrace=False,
        )
    out = subprocess.run([path, "version"], capture_output=True, text=True, check=False).stdout
    if KUSTOMIZE_VERSION not in out:
        pytest.fail(
            f"{path} reports {out.strip()!r}, want {KUSTOMIZE_VERSION}: re-run {SETUP_STEP}",
            pytrace=False,
        )
    return path


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kustomize_bin(), "build", str(directory)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, f"kustomize build {directory} failed:\n{proc.stderr}"
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def patch_files(root: Path | None = None) -> set[Path]:
    """Files the kustomizations use as patches (not objects of their own)."""
    root = DEPLOY if root is None else root
    found: set[Path] = set()
    for kfile in root.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kfile.read_text()) or {}
        for entry in (spec.get("patches") or []) + (spec.get("patchesStrategicMerge") or []):
            rel = entry.get("path") if isinstance(entry, dict) else entry
            if isinstance(rel, str):
                found.add((kfile.parent / rel).resolve())
    return found


def component_dirs(root: Path | None = None) -> set[Path]:
    """Directories of kustomize Components (options an operator adds, e.g.
    deploy/webhook/cert-manager): their objects are not in the default build."""
    root = DEPLOY if root is None else root
    return {k.parent.resolve() for k in root.rglob("kustomization.yaml")
            if (yaml.safe_load(k.read_text()) or {}).get("kind") == "Component"}


def tree_objects() -> list[tuple[Path, dict[str, Any]]]:
    """API objects defined under deploy/ that the kustomization must include."""
    patches = patch_files()
    components = component_dirs()
    out = []
    for path in yaml_files():
        rel = path.relative_to(DEPLOY)
        if rel.parts[0] in ("examples", "knobs") or path.resolve() in patches:
            continue
        if any(c in path.resolve().parents for c in components):
            continue
        out.extend((path, d) for d in load_docs(path) if group_of(d) not in NOT_API)
    return out


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj.get("kind") not in WORKLOAD_KINDS:
        return []
    if obj["kind"] == "CronJob":
        spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]  # Job too
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    raw = cfg["options.entry_points"]["console_scripts"]
    pairs = (line.split("=", 1) for line in raw.strip().splitlines() if "=" in line)
    return {name.strip(): target.strip() for name, target in pairs}


@functools.cache
def script_help(script: str, *subcommand: str) -> str:
    """``script [subcommand] --help``."""
    exe = VENV_BIN / script
    if not os.access(exe, os.X_OK):
        pytest.fail(f"{exe} missing: run hack/setup.sh (step: python venv)", pytrace=False)
    env = dict(os.environ, COLUMNS="1000")
    proc = subprocess.run([exe, *subcommand, "--help"], capture_output=True, text=True, env=env,
                          check=False)
    assert proc.returncode == 0, f"{script} {' '.join(subcommand)} --help failed: {proc.stderr}"
    return proc.stdout


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert hits, (
        f"{kind}/{name} not in the build: {[(o['kind'], o['metadata']['name']) for o in objs]}"
    )
    return hits[0]


def apply(dyn: DynamicClient, obj: dict[str, Any], *, dry_run: bool) -> Any:
    res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    namespace = obj["metadata"].get("namespace") or ("default" if res.namespaced else None)
    return dyn.server_side_apply(
        res,
        body=obj,
        namespace=namespace,
        field_manager="tke-deploy-test",
        force_conflicts=True,
        dry_run="All" if dry_run else None,
    )


def create_crds(api: client.ApiClient, objs: list[dict[str, Any]]) -> None:
    dyn = DynamicClient(api)
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert crds
    for crd in crds:
        apply(dyn, crd, dry_run=False)
    ext = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + 60  # a bound for the wait, not a timing assertion
    pending = {c["metadata"]["name"] for c in crds}
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conds):
                pending.discard(name)
        time.sleep(0.2)
    assert not pending, f"CRDs not Established: {pending}"


# --- a container's process as the kubelet would start it --------------------------------------

#: Downward-API values for a pod on a test node (fieldRef paths the manifests use).
DOWNWARD = {
    "spec.nodeName": "node-1",
    "status.hostIP": "10.0.0.5",
    "status.podIP": "10.0.0.5",  # hostNetwork pods get the node's IP
    "metadata.name": "pod-1",
    "metadata.namespace": "kube-system",
}
_VAR = re.compile(r"\$\((\w+)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a defined variable is replaced, others stay as written."""
    return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)


def _configmap(objs: list[dict[str, Any]], namespace: str, name: str) -> dict[str, str] | None:
    for o in objs:
        meta = o["metadata"]
        if o["kind"] == "ConfigMap" and meta["name"] == name and meta.get("namespace") == namespace:
            return dict(o.get("data") or {})
    return None


def container_process(
    objs: list[dict[str, Any]],
    obj: dict[str, Any],
    c: dict[str, Any],
    downward: dict[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """(argv after the program name, environment) the container's program gets: env in
    order with $(VAR) expansion, downward API, ConfigMaps from ``objs``; optional Secrets
    absent (a required one is an error: the test cluster has none). ``downward``: the
    downward-API values (default ``DOWNWARD``)."""
    fields = DOWNWARD if downward is None else downward
    ns = obj["metadata"].get("namespace", "default")
    env: dict[str, str] = {}
    for ref in c.get("envFrom") or []:
        if "configMapRef" in ref:
            data = _configmap(objs, ns, ref["configMapRef"]["name"])
            assert data is not None or ref["configMapRef"].get("optional"), ref
            env.update(data or {})
        else:
            assert ref.get("secretRef", {}).get("optional"), f"required Secret in envFrom: {ref}"
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        src = e.get("valueFrom") or {}
        if "fieldRef" in src:
            env[e["name"]] = fields[src["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in src:
            key = src["configMapKeyRef"]
            data = _configmap(objs, ns, key["name"]) or {}
            assert key["key"] in data or key.get("optional"), f"{e['name']}: {key} missing"
            if key["key"] in data:
                env[e["name"]] = data[key["key"]]
        else:
            assert src.get("secretKeyRef", {}).get("optional"), f"required Secret: {e}"
    words = list(c.get("command") or [])[1:] + list(c.get("args") or [])
    return [expand(str(w), env) for w in words], env


def mount_paths(c: dict[str, Any]) -> list[str]:
    return [m["mountPath"] for m in c.get("volumeMounts") or []]


def under_a_mount(path: str, c: dict[str, Any]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mount_paths(c))
