"""deploy/ as an operator uses it, against real peers:

1. every YAML under deploy/ parses;
2. the real ``kustomize`` builds deploy/ (every manifest included, the knobs take
   effect), and every flag / env var / ``$(VAR)`` the containers use exists in
   the console script's ``--help`` (a guard against drift);
3. everything is applied to the real kube-apiserver: the CRDs for real, all the
   rest with server-side apply and ``dryRun=All`` (admission, defaulting and
   validation run, nothing is stored); the examples too, and the guide's
   ``apps/v1beta1`` StatefulSet is shown to be refused.

Also: test_deploy_workloads.py (kube-scheduler config, settings loaders, pod
policy), test_deploy_agent_rbac.py (the agent's RBAC with its own token),
tests/unit/test_deploy_dockerfile.py.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from localcluster.controlplane import ControlPlane
from tests.deploy_support import (
    DEPLOY,
    IMAGE,
    ROOT,
    SETTING_PREFIXES,
    apply,
    console_scripts,
    containers,
    create_crds,
    find,
    kustomize_build,
    load_docs,
    script_help,
    tree_objects,
    yaml_files,
)


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize_build(DEPLOY)


# --- 1. parse --------------------------------------------------------------------------------


def test_every_yaml_under_deploy_parses() -> None:
    files = yaml_files()
    assert files, "no YAML under deploy/"
    for path in files:
        docs = load_docs(path)
        assert docs, f"{path}: empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion/kind missing"


# --- 2. kustomize ----------------------------------------------------------------------------


def test_kustomization_includes_every_manifest(built: list[dict[str, Any]]) -> None:
    have = {(o["kind"], o["metadata"]["name"]) for o in built}
    missing = [
        f"{p.relative_to(ROOT)}: {d['kind']}/{d['metadata']['name']}"
        for p, d in tree_objects()
        if (d["kind"], d["metadata"]["name"]) not in have
    ]
    assert not missing, "manifests left out of deploy/kustomization.yaml:\n" + "\n".join(missing)
    kinds = {o["kind"] for o in built}
    for kind in (
        "CustomResourceDefinition",
        "DaemonSet",
        "Deployment",
        "ConfigMap",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
    ):
        assert kind in kinds, f"no {kind} in the build"


def test_every_component_image_is_the_knob(built: list[dict[str, Any]]) -> None:
    images = {c["image"] for o in built for c in containers(o)}
    assert images == {f"{IMAGE}:latest"}, images


def test_knobs_reach_the_objects(tmp_path: Path) -> None:
    """Edit the documented knobs in a copy of deploy/, build, find every value in place."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    kfile = copy / "kustomization.yaml"
    spec = yaml.safe_load(kfile.read_text())
    spec["images"] = [
        {"name": IMAGE, "newName": "ccr.example.com/ns/tke-vpc-cni", "newTag": "9.9.9"}
    ]
    kfile.write_text(yaml.safe_dump(spec))
    cm = yaml.safe_load((copy / "knobs/ipamd-configmap.yaml").read_text())
    cm["data"] = {
        "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaa1111:subnet-bbbb2222",
        "TKE_ENI_IPAMD_VPC_ID": "vpc-cccc3333",
    }
    (copy / "knobs/ipamd-configmap.yaml").write_text(yaml.safe_dump(cm))
    args_file = copy / "knobs/ipamd-args.yaml"
    text = args_file.read_text()
    assert "cls-xxxxxxxx" in text and "10m0s" in text, "knob placeholders changed: update this test"
    args_file.write_text(text.replace("cls-xxxxxxxx", "cls-test1234").replace("10m0s", "15m0s"))

    objs = kustomize_build(copy)
    assert {c["image"] for o in objs for c in containers(o)} == {
        "ccr.example.com/ns/tke-vpc-cni:9.9.9"
    }
    got = find(objs, "ConfigMap", "tke-eni-ipamd")
    assert got["metadata"]["namespace"] == "kube-system"
    assert got["data"]["TKE_ENI_IPAMD_SUBNET_ID"] == "subnet-aaaa1111:subnet-bbbb2222"
    assert got["data"]["TKE_ENI_IPAMD_VPC_ID"] == "vpc-cccc3333"
    ipamd = find(objs, "Deployment", "tke-eni-ipamd")
    args = " ".join(a for c in containers(ipamd) for a in c.get("args") or [])
    assert re.search(r"--clusterid[ =]cls-test1234\b", args), args
    assert re.search(r"--claim-expired-duration[ =]15m0s\b", args), args


def test_knob_patch_keeps_every_base_ipamd_flag(built: list[dict[str, Any]]) -> None:
    """The args knob replaces ipamd's args list: it must carry every flag of the base."""
    base = kustomize_build(DEPLOY / "ipamd")
    flags = {
        a.split("=")[0]
        for c in containers(find(base, "Deployment", "tke-eni-ipamd"))
        for a in c.get("args") or []
        if a.startswith("--")
    }
    final = {
        a.split("=")[0]
        for c in containers(find(built, "Deployment", "tke-eni-ipamd"))
        for a in c.get("args") or []
        if a.startswith("--")
    }
    assert flags <= final, (
        f"flags of deploy/ipamd lost by deploy/knobs/ipamd-args.yaml: {flags - final}"
    )


def test_container_flags_and_env_exist_in_console_scripts(built: list[dict[str, Any]]) -> None:
    scripts = console_scripts()
    cloud_settings = (ROOT / "cloud" / "settings.py").read_text()
    checked = 0
    for obj in built:
        for c in containers(obj):
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            command = c.get("command") or []
            assert command and command[0] in scripts, (
                f"{where}: command {command} is no console script"
            )
            words = list(command[1:]) + list(c.get("args") or [])
            # a subcommand (tke-eni-ip-webhook certs ...): its own --help
            sub = words[:1] if words and not words[0].startswith("-") else []
            help_text = script_help(command[0], *sub)
            known = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_text))
            env_names = {e["name"] for e in c.get("env") or []}
            for arg in words[len(sub):]:
                if arg.startswith("--"):
                    flag = arg.split("=", 1)[0]
                    assert flag in known, f"{where}: {flag} not in `{command[0]} --help`"
                    checked += 1
                for ref in re.findall(r"\$\((\w+)\)", arg):
                    assert ref in env_names, f"{where}: $({ref}) in {arg!r} is not in its env"
            defined: set[str] = set()
            for e in c.get("env") or []:  # $(VAR) in an env value: an EARLIER entry of env
                for ref in re.findall(r"\$\((\w+)\)", str(e.get("value", ""))):
                    assert ref in defined, (
                        f"{where}: env {e['name']} uses $({ref}) before/without it"
                    )
                defined.add(e["name"])
            for name in env_names:
                if name.startswith(SETTING_PREFIXES):
                    ok = name in help_text or (
                        name.startswith("TKE_CLOUD_") and name in cloud_settings
                    ) or (  # the device plugin served in the agent's process
                        name.startswith("TKE_ENI_DP_") and "--device-plugin=true" in words
                        and name in script_help("tke-eni-device-plugin")
                    )
                    assert ok, f"{where}: env {name} is not a setting of {command[0]}"
    assert checked, "no flag checked"


# --- 3. the real kube-apiserver -------------------------------------------------------------


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api_client:
        yield api_client


def test_everything_applies_to_the_real_apiserver(
    api: client.ApiClient, built: list[dict[str, Any]]
) -> None:
    create_crds(api, built)
    dyn = DynamicClient(api)  # fresh discovery: sees the new CRDs
    examples = [d for p in yaml_files(DEPLOY / "examples") for d in load_docs(p)]
    failures, applied = [], []
    for obj in [o for o in built if o["kind"] != "CustomResourceDefinition"] + examples:
        label = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            out = apply(dyn, obj, dry_run=True)
        except Exception as exc:
            failures.append(f"{label}: {getattr(exc, 'status', '')} {getattr(exc, 'body', exc)}")
            continue
        assert out.metadata.name == obj["metadata"]["name"]
        applied.append(label)
    assert not failures, "refused by kube-apiserver (dryRun=All):\n" + "\n".join(failures)
    print(f"server-side dry run accepted {len(applied)} objects: {', '.join(applied)}")
    # dry run persisted nothing
    with pytest.raises(client.ApiException) as err:
        client.AppsV1Api(api).read_namespaced_daemon_set("tke-eni-agent", "kube-system")
    assert err.value.status == 404


GUIDE_STATEFULSET_V1BETA1 = """
apiVersion: apps/v1beta1
kind: StatefulSet
metadata:
  name: busybox
spec:
  serviceName: "busybox"
  replicas: 1
  template:
    metadata:
      annotations:
        tke.cloud.tencent.com/networks: tke-route-eni
        tke.cloud.tencent.com/vpc-ip-claim-delete-policy: Never
      labels:
        app: busybox
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: busybox
        image: busybox
        command: ["sleep", "10000000000"]
        resources:
          requests:
            tke.cloud.tencent.com/eni-ip: "1"
          limits:
            tke.cloud.tencent.com/eni-ip: "1"
"""


def test_guide_statefulset_needs_the_correction(api: client.ApiClient) -> None:
    """Why deploy/examples/busybox-statefulset.yaml differs from the guide's text."""
    guide = yaml.safe_load(GUIDE_STATEFULSET_V1BETA1)
    path = "/apis/apps/v1beta1/namespaces/default/statefulsets"
    with pytest.raises(client.ApiException) as err:
        DynamicClient(api).request("post", path, body=guide, dry_run="All")
    assert err.value.status == 404, err.value  # apps/v1beta1 is not served (removed in 1.16)
    guide["apiVersion"] = "apps/v1"  # only the version changed: the selector is still missing
    with pytest.raises(client.ApiException) as err:  # raw request: no client-side validation
        DynamicClient(api).request("post", path.replace("v1beta1", "v1"), body=guide, dry_run="All")
    assert err.value.status == 422 and "spec.selector" in str(err.value.body), err.value.body
