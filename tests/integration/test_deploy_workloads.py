"""The workloads of deploy/ as the programs and the cluster see them: the real
kube-scheduler validates the scheduler configuration (and its extender entry
matches the extender's Service and flags); each program's own settings loader
accepts the argv and environment the kubelet would give it; priority classes,
resources, probes, PDBs and the agent pod's privileges are what docs/deploy.md
says."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from localcluster.binaries import k8s_binaries
from tests.deploy_support import (
    DEPLOY,
    DOWNWARD,
    container_process,
    containers,
    find,
    kustomize_build,
    load_docs,
    mount_paths,
    under_a_mount,
    yaml_files,
)


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize_build(DEPLOY)


# --- the KubeSchedulerConfiguration: validated by the real kube-scheduler -------------------

DUMMY_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: unused}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def scheduler_configs() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (p, d)
        for p in yaml_files()
        for d in load_docs(p)
        if d.get("kind") == "KubeSchedulerConfiguration"
    ]


def test_scheduler_config_is_accepted_by_kube_scheduler(
    tmp_path: Path, built: list[dict[str, Any]]
) -> None:
    """kube-scheduler --config F --write-config-to OUT validates F (defaulting + validation,
    the same code the scheduler runs at start) and exits; the extender entry must point
    at the extender Service and paths the build really serves."""
    configs = scheduler_configs()
    assert configs, "no KubeSchedulerConfiguration under deploy/"
    kube_scheduler = k8s_binaries().kube_scheduler
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(DUMMY_KUBECONFIG)
    from localcluster.extender_pki import make_extender_pki

    pki = make_extender_pki(tmp_path / "extender-pki")
    for path, original in configs:
        conf = dict(original, clientConnection={"kubeconfig": str(kubeconfig)})
        # kube-scheduler opens the tlsConfig files at start: the shipped paths are the
        # operator's; here they point at test certificates (same keys)
        conf["extenders"] = [dict(e) for e in original["extenders"]]
        for ext in conf["extenders"]:
            assert ext.get("enableHTTPS") is True, f"{path}: the extender is called over HTTPS"
            assert set(ext.get("tlsConfig") or {}) == {"certFile", "keyFile", "caFile"}, ext
            ext["tlsConfig"] = pki.tls_config()
        src, out = tmp_path / "in.yaml", tmp_path / "out.yaml"
        src.write_text(yaml.safe_dump(conf))
        proc = subprocess.run(
            [kube_scheduler, "--config", src, "--write-config-to", out],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0 and out.exists(), f"{path}: refused:\n{proc.stderr[-2000:]}"
        effective = yaml.safe_load(out.read_text())
        for ext in effective["extenders"]:
            resources = {r["name"] for r in ext.get("managedResources") or []}
            assert "tke.cloud.tencent.com/eni-ip" in resources, ext
            url = urlsplit(ext["urlPrefix"])
            name, _, namespace = (url.hostname or "").partition(".")
            svc = find(built, "Service", name)
            assert svc["metadata"]["namespace"] == namespace.split(".")[0], (ext, svc)
            assert url.port in {p["port"] for p in svc["spec"]["ports"]}, (ext, svc)
            deploy = next(
                o
                for o in built
                if o["kind"] == "Deployment"
                and o["spec"]["template"]["metadata"]["labels"].items()
                >= svc["spec"]["selector"].items()
            )
            args = " ".join(a for c in containers(deploy) for a in c.get("args") or [])
            for verb, flag in (
                ("filterVerb", "--filter-path"),
                ("prioritizeVerb", "--prioritize-path"),
            ):
                if ext.get(verb) and flag in args:
                    assert f"{flag}=/{ext[verb]}" in args, (verb, ext[verb], args)


# --- the manifests' values are accepted by the programs' own settings loaders ---------------


def _loaders() -> dict[str, Callable[..., Any]]:
    from cni.agent import config as agent_config
    from ipamd import config as ipamd_config
    from scheduler_extender import config as extender_config
    from webhook import config as webhook_config
    from webhook import provision_config

    def webhook(argv: list[str], env: dict[str, str]) -> Any:  # the server, or `certs`
        if argv[:1] == ["certs"]:
            return provision_config.parse(argv[1:], env)
        return webhook_config.parse(argv, env)

    return {
        "tke-eni-agent": agent_config.parse,
        "tke-eni-ipamd": ipamd_config.load,
        "tke-eni-scheduler-extender": extender_config.parse,
        "tke-eni-ip-webhook": webhook,
    }


def _ipamd_knob_set(argv: list[str], env: dict[str, str], load: Callable[..., Any]) -> list[str]:
    """deploy/ ships a placeholder --clusterid: ipamd refuses it naming the knob; the
    argv with the knob set (an operator's cluster id) is what must load."""
    with pytest.raises(ValueError, match=r"deploy/knobs/ipamd-args\.yaml"):
        load(argv, env)
    i = argv.index("--clusterid")
    return [*argv[: i + 1], "cls-kjqul1ir", *argv[i + 2 :]]


def test_every_container_configuration_loads(built: list[dict[str, Any]]) -> None:
    """Each program's real settings loader (flags > env > defaults, with its validation)
    accepts the argv and environment the kubelet would give it — values, not only names."""
    loaders = _loaders()
    loaded = {}
    for obj in built:
        for c in containers(obj):
            argv, env = container_process(built, obj, c)
            program = c["command"][0]
            if program == "tke-eni-ipamd":
                argv = _ipamd_knob_set(argv, env, loaders[program])
            try:
                loaded[c["name"]] = (loaders[program](argv, env), c)
            except (SystemExit, ValueError) as exc:
                pytest.fail(
                    f"{obj['kind']}/{obj['metadata']['name']} {c['name']}: {program} "
                    f"refuses {argv} / {sorted(env)}: {exc!r}"
                )
    assert "tke-eni-agent" in loaded, sorted(loaded)

    agent, c = loaded["tke-eni-agent"]
    assert agent.node_name == DOWNWARD["spec.nodeName"]
    assert agent.health_address == f"{DOWNWARD['status.hostIP']}:9867"
    # every path the agent writes is a host mount (and the root filesystem is read-only)
    for path in (
        os.path.dirname(agent.socket),
        agent.state_dir,
        agent.cni_bin_dir,
        agent.cni_conf_dir,
    ):
        assert under_a_mount(path, c), f"agent writes {path}: not a host mount {mount_paths(c)}"
    assert under_a_mount("/var/run/netns", c)
    # the agent feeds the device plugin through the capacity file: one host directory
    capfile = agent.device_plugin_capacity_file
    assert capfile and under_a_mount(os.path.dirname(capfile), c), (capfile, mount_paths(c))
    # the device plugin runs in the agent's process, configured by the container's
    # TKE_ENI_DP_* variables (the loader the agent's --device-plugin calls)
    from device_plugin import settings as dp_settings

    assert agent.device_plugin is True
    dp = dp_settings.load([], container_process(built, find(built, "DaemonSet", "tke-eni-agent"),
                                                c)[1])
    assert under_a_mount(dp.device_plugin_dir, c), (dp.device_plugin_dir, mount_paths(c))
    assert dp.capacity_file == capfile, (dp.capacity_file, capfile)
    assert under_a_mount(os.path.dirname(dp.capacity_file), c), mount_paths(c)
    assert dp.metrics_bind_address == f"{DOWNWARD['status.hostIP']}:9961"


PRIORITY = {
    "DaemonSet/tke-eni-agent": "system-node-critical",
    "Deployment/tke-eni-ipamd": "system-cluster-critical",
    "Deployment/tke-eni-ip-scheduler": "system-cluster-critical",
    "Deployment/tke-eni-ip-webhook": "system-cluster-critical",
}


def test_workload_policy(built: list[dict[str, Any]]) -> None:
    """Priority classes, requests/limits, probes, PDBs, replicas: what an operator expects."""
    workloads = {f"{o['kind']}/{o['metadata']['name']}": o for o in built
                 if containers(o) and o["kind"] not in ("Job", "CronJob")}  # one-shot: see
    # tests/integration/test_deploy_webhook.py for the webhook's certs Job and CronJob
    assert set(workloads) == set(PRIORITY), sorted(workloads)
    pdbs = [o for o in built if o["kind"] == "PodDisruptionBudget"]
    for label, obj in workloads.items():
        pod = obj["spec"]["template"]["spec"]
        assert obj["metadata"]["namespace"] == "kube-system", label
        assert pod.get("priorityClassName") == PRIORITY[label], label
        for c in containers(obj):
            where = f"{label} {c['name']}"
            requests = (c.get("resources") or {}).get("requests") or {}
            limits = (c.get("resources") or {}).get("limits") or {}
            assert {"cpu", "memory"} <= set(requests) and "memory" in limits, where
            assert c.get("readinessProbe") and c.get("livenessProbe"), where
            assert (c.get("securityContext") or {}).get("readOnlyRootFilesystem"), where
        if obj["kind"] == "Deployment":
            assert obj["spec"]["replicas"] >= 2, label
            labels = obj["spec"]["template"]["metadata"]["labels"]
            covering = [
                p
                for p in pdbs
                if p["metadata"]["namespace"] == "kube-system"
                and p["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert covering, f"{label}: no PodDisruptionBudget"
    agent = workloads["DaemonSet/tke-eni-agent"]["spec"]["template"]["spec"]
    assert agent["hostNetwork"] is True
    assert agent["hostPID"] is True  # CNI_NETNS may be /proc/<host pid>/ns/net
    assert {"operator": "Exists"} in agent["tolerations"]  # NotReady (no CNI yet) nodes too
    by_name = {c["name"]: c for c in agent["containers"]}
    # one container, one process: the device plugin is served by the agent (--device-plugin)
    assert set(by_name) == {"tke-eni-agent"}
    assert by_name["tke-eni-agent"]["securityContext"]["privileged"] is True
    netns = [
        m for m in by_name["tke-eni-agent"]["volumeMounts"] if m["mountPath"] == "/var/run/netns"
    ]
    assert netns and netns[0]["mountPropagation"] == "HostToContainer"
    # the API token is projected into the agent container (no automount)
    assert agent["automountServiceAccountToken"] is False
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert token in mount_paths(by_name["tke-eni-agent"])
