"""The local run's kustomize overlay on deploy/: only what a real cluster differs in.

Written to ``<workdir>/overlay/`` and built with the kustomize ``kubectl apply -k``
embeds, exactly as an operator's own overlay would be:

- the image: ``tke-vpc-cni`` at the locally built tag (or digest) the nodes pull;
- the cloud: the emulated cloud's API endpoint and metadata URL inside the VPC, and the
  credentials Secrets deploy/ reads (optional there; the emulator's key pair here);
- the cluster: ``--clusterid`` (deploy/'s placeholder is refused by ipamd);
- the scheduler extender: its Service's ClusterIP pinned (kube-scheduler runs with
  host networking and no cluster DNS, as deploy/'s comments describe) and its TLS
  Secret (serving certificate + the client CA of kube-scheduler's certificate);
- the machines: our pods stay off the simulated (kwok) nodes, which run nothing;
- the test bed's tuning (``env``): shorter ipamd loops for bounded test waits.

Pure: objects in, files out; nothing is applied here."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localrun.manifests import DEPLOY, ManifestError, find

IPAMD = "tke-eni-ipamd"
AGENT = "tke-eni-agent"
EXTENDER = "tke-eni-ip-scheduler"
WEBHOOK = "tke-eni-ip-webhook"
EXTENDER_TLS_SECRET = "tke-eni-ip-scheduler-tls"  # noqa: S105 - a Secret's name
#: kwok's simulated nodes carry this label; nothing really runs on them
FAKE_NODE_LABEL = ("type", "kwok")


@dataclass(frozen=True)
class OverlaySettings:
    image: str  # e.g. "tke-vpc-cni:dev" or "tke-vpc-cni@sha256:..."
    cluster_id: str
    cloud_endpoint: str  # host:port inside the VPC (plain HTTP: the emulator)
    metadata_url: str
    secret_id: str
    secret_key: str
    extender_cluster_ip: str
    extender_tls: Mapping[str, Path]  # tls.crt, tls.key, client-ca.crt
    ipamd_env: Mapping[str, str] = field(default_factory=dict)
    agent_args: Sequence[str] = ()  # replace the agent's flags of the same name
    webhook_args: Sequence[str] = ()  # replace the webhook's flags of the same name
    extra_resources: Sequence[Mapping[str, Any]] = ()  # e.g. a ConfigMap the args name


def _image_fields(image: str) -> dict[str, str]:
    name, sep, digest = image.partition("@")
    if sep:
        return {"name": "tke-vpc-cni", "newName": name, "digest": digest}
    name, _, tag = name.partition(":")
    return {"name": "tke-vpc-cni", "newName": name, "newTag": tag or "latest"}


def _container_index(obj: Mapping[str, Any], name: str) -> int:
    for i, c in enumerate(obj["spec"]["template"]["spec"]["containers"]):
        if c["name"] == name:
            return i
    raise ManifestError(f"{obj['kind']}/{obj['metadata']['name']} has no container {name}")


def _flag_ops(obj: Mapping[str, Any], container: str, flags: Sequence[str]) -> list[dict[str, Any]]:
    """JSON-patch ops that set each ``--flag=value`` of ``flags`` in the container's args
    (replacing ``--flag=x`` or ``--flag x``; appended when absent)."""
    i = _container_index(obj, container)
    args = [str(a) for a in obj["spec"]["template"]["spec"]["containers"][i].get("args") or []]
    base = f"/spec/template/spec/containers/{i}/args"
    ops: list[dict[str, Any]] = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep:
            raise ManifestError(f"overlay flag {flag!r} must be --name=value")
        for j, a in enumerate(args):
            if a.startswith(name + "="):
                ops.append({"op": "replace", "path": f"{base}/{j}", "value": flag})
                break
            if a == name and j + 1 < len(args):
                ops.append({"op": "replace", "path": f"{base}/{j + 1}", "value": value})
                break
        else:
            ops.append({"op": "add", "path": f"{base}/-", "value": flag})
    return ops


def _env_ops(obj: Mapping[str, Any], container: str, env: Mapping[str, str]
             ) -> list[dict[str, Any]]:
    i = _container_index(obj, container)
    have = obj["spec"]["template"]["spec"]["containers"][i].get("env")
    base = f"/spec/template/spec/containers/{i}/env"
    ops: list[dict[str, Any]] = [] if have is not None else [
        {"op": "add", "path": base, "value": []}]
    names = [e["name"] for e in have or []]
    for k, v in env.items():
        if k in names:
            ops.append({"op": "replace", "path": f"{base}/{names.index(k)}",
                        "value": {"name": k, "value": v}})
        else:
            ops.append({"op": "add", "path": f"{base}/-", "value": {"name": k, "value": v}})
    return ops


def _not_on_fake_nodes(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"] if obj["kind"] == "CronJob" \
        else obj["spec"]["template"]["spec"]
    prefix = "/spec/jobTemplate/spec/template/spec" if obj["kind"] == "CronJob" \
        else "/spec/template/spec"
    term = {"matchExpressions": [{"key": FAKE_NODE_LABEL[0], "operator": "NotIn",
                                  "values": [FAKE_NODE_LABEL[1]]}]}
    required = {"nodeSelectorTerms": [term]}
    ops: list[dict[str, Any]] = []
    if "affinity" not in spec:
        ops.append({"op": "add", "path": f"{prefix}/affinity", "value": {}})
    ops.append({"op": "add", "path": f"{prefix}/affinity/nodeAffinity", "value": {
        "requiredDuringSchedulingIgnoredDuringExecution": required}})
    return ops


def _patch(obj: Mapping[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    meta = obj["metadata"]
    target = {"kind": obj["kind"], "name": meta["name"]}
    if meta.get("namespace"):
        target["namespace"] = meta["namespace"]
    return {"target": target, "patch": json.dumps(ops)}


def kustomization(objs: list[dict[str, Any]], s: OverlaySettings, deploy: str
                  ) -> dict[str, Any]:
    """The overlay's kustomization.yaml (``deploy``: the path of deploy/ from it)."""
    ipamd = find(objs, "Deployment", IPAMD)
    agent = find(objs, "DaemonSet", AGENT)
    extender_svc = find(objs, "Service", EXTENDER)
    cloud_env = {"TKE_CLOUD_VPC_ENDPOINT": s.cloud_endpoint,
                 "TKE_CLOUD_CVM_ENDPOINT": s.cloud_endpoint, "TKE_CLOUD_PROTOCOL": "http"}
    patches = [
        _patch(ipamd, _flag_ops(ipamd, IPAMD, [f"--clusterid={s.cluster_id}",
                                               "--enable-security-groups=true"])
               + _env_ops(ipamd, IPAMD, {**cloud_env, **s.ipamd_env})),
        # the device plugin runs in the agent's process (--device-plugin=true)
        _patch(agent, _env_ops(agent, AGENT, {
            **cloud_env, "TKE_ENI_DP_METADATA_URL": s.metadata_url,
            "TKE_ENI_DP_CLOUD_ENDPOINT": f"http://{s.cloud_endpoint}"})
            + _flag_ops(agent, AGENT, s.agent_args) + _not_on_fake_nodes(agent)),
        _patch(extender_svc, [{"op": "add", "path": "/spec/clusterIP",
                               "value": s.extender_cluster_ip}]),
    ]
    if s.webhook_args:
        webhook = find(objs, "Deployment", WEBHOOK)
        patches.append(_patch(webhook, _flag_ops(webhook, WEBHOOK, s.webhook_args)))
    patches += [_patch(o, _not_on_fake_nodes(o)) for o in objs
                if o["kind"] in ("Deployment", "Job", "CronJob")]
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [deploy, *(f"extra-{i}.yaml" for i in range(len(s.extra_resources)))],
        "images": [_image_fields(s.image)],
        "secretGenerator": [
            {"name": name, "namespace": "kube-system",
             "literals": [f"TENCENTCLOUD_SECRET_ID={s.secret_id}",
                          f"TENCENTCLOUD_SECRET_KEY={s.secret_key}"],
             "options": {"disableNameSuffixHash": True}}
            for name in ("tke-eni-cloud-credentials", "tke-eni-ipamd-credentials")
        ] + [{"name": EXTENDER_TLS_SECRET, "namespace": "kube-system", "type": "kubernetes.io/tls",
              "files": [f"{k}=extender-tls/{k}" for k in sorted(s.extender_tls)],
              "options": {"disableNameSuffixHash": True}}],
        "patches": patches,
    }


def write(directory: Path, objs: list[dict[str, Any]], s: OverlaySettings,
          deploy: Path = DEPLOY) -> Path:
    """Write the overlay (kustomization.yaml + the files it names) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tls = directory / "extender-tls"
    tls.mkdir(exist_ok=True)
    for key, path in s.extender_tls.items():
        shutil.copyfile(path, tls / key)
    for i, res in enumerate(s.extra_resources):
        (directory / f"extra-{i}.yaml").write_text(yaml.safe_dump(dict(res), sort_keys=False))
    rel = Path(*([".."] * len(directory.resolve().parts[1:]))) / deploy.resolve().relative_to("/")
    text = yaml.safe_dump(kustomization(objs, s, str(rel)), sort_keys=False)
    (directory / "kustomization.yaml").write_text(
        "# generated by localrun.overlay: deploy/ + what the local run's cluster differs in\n"
        + text)
    return directory / "kustomization.yaml"
