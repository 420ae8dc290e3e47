"""deploy/webhook as an operator installs it: the MutatingWebhookConfiguration is
safe with failurePolicy Fail (its own namespace and kube-system excluded, short
timeout, no side effects), it points at the Service and path the server serves,
the Secret the certs Job writes is the one the pods mount, --eni-only matches the
agent's, the certs Job and CronJob are one-shot, least-privilege and load; the
cert-manager option builds. (Flags and env names against --help, and the real
apiserver's dry run of everything: test_deploy_manifests.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_support import (
    DEPLOY,
    container_process,
    containers,
    find,
    kustomize_build,
)
from webhook import config as webhook_config
from webhook import provision_config

MWC = "add-pod-eni-ip-limit-webhook"
NS = "kube-system"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize_build(DEPLOY)


def _args(obj: dict[str, Any]) -> list[str]:
    return [a for c in containers(obj) for a in c.get("args") or []]


def test_webhook_configuration_is_safe_with_fail(built: list[dict[str, Any]]) -> None:
    cfg = find(built, "MutatingWebhookConfiguration", MWC)
    hooks = {h["name"].split(".")[0]: h for h in cfg["webhooks"]}
    assert set(hooks) == {"pods", "workloads"}
    pods, workloads = hooks["pods"], hooks["workloads"]
    assert pods["failurePolicy"] == "Fail" and workloads["failurePolicy"] == "Ignore"
    assert pods["rules"] == [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                              "resources": ["pods"], "scope": "Namespaced"}]
    for h in hooks.values():
        assert h["sideEffects"] == "None" and h["admissionReviewVersions"] == ["v1"]
        assert 1 <= h["timeoutSeconds"] <= 5
        excluded = [e for e in h["namespaceSelector"]["matchExpressions"]
                    if e["key"] == "kubernetes.io/metadata.name" and e["operator"] == "NotIn"]
        assert excluded and {NS} <= set(excluded[0]["values"]), h["namespaceSelector"]
        assert "objectSelector" in h
    assert pods["reinvocationPolicy"] == "IfNeeded"  # docs/webhook.md says why


def test_clients_reach_the_server_and_the_secret_is_the_mounted_one(
        built: list[dict[str, Any]]) -> None:
    cfg = find(built, "MutatingWebhookConfiguration", MWC)
    deploy = find(built, "Deployment", "tke-eni-ip-webhook")
    svc = find(built, "Service", "tke-eni-ip-webhook")
    (c,) = containers(deploy)
    argv, env = container_process(built, deploy, c)
    settings = webhook_config.parse(argv, env)
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port_names["https"] == settings.port and port_names["health"] == settings.health_port
    for h in cfg["webhooks"]:
        ref = h["clientConfig"]["service"]
        assert (ref["name"], ref["namespace"]) == (svc["metadata"]["name"], NS)
        assert ref["path"] == settings.mutate_path
        (port,) = [p for p in svc["spec"]["ports"] if p["port"] == ref["port"]]
        assert port["targetPort"] == "https"
        # the webhook's own namespace is never covered (it could not restart)
        values = h["namespaceSelector"]["matchExpressions"][0]["values"]
        assert deploy["metadata"]["namespace"] in values
    assert svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"][
        "labels"].items()
    # the Secret the pods mount is the one the certs Job writes, for this Service
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    (mount,) = c["volumeMounts"]
    secret = volumes[mount["name"]]["secret"]["secretName"]
    assert settings.tls_cert_file == f"{mount['mountPath']}/tls.crt"
    assert settings.tls_key_file == f"{mount['mountPath']}/tls.key"
    for kind in ("Job", "CronJob"):
        job = find(built, kind, "tke-eni-ip-webhook-certs")
        (jc,) = containers(job)
        jargv, jenv = container_process(built, job, jc)
        assert jargv[0] == "certs"
        certs = provision_config.parse(jargv[1:], jenv)
        assert (certs.secret_name, certs.namespace, certs.service) == (
            secret, NS, svc["metadata"]["name"])
        assert certs.webhook_configuration == MWC
        assert f"{svc['metadata']['name']}.{NS}.svc" in certs.names()


def test_eni_only_matches_the_agent(built: list[dict[str, Any]]) -> None:
    """The webhook and the agent must apply the same rule to the same pods."""
    from cni.agent import config as agent_config

    agent = find(built, "DaemonSet", "tke-eni-agent")
    (ac,) = [c for c in containers(agent) if c["name"] == "tke-eni-agent"]
    deploy = find(built, "Deployment", "tke-eni-ip-webhook")
    (wc,) = containers(deploy)
    agent_settings = agent_config.parse(*container_process(built, agent, ac))
    webhook_settings = webhook_config.parse(*container_process(built, deploy, wc))
    assert webhook_settings.eni_only == agent_settings.eni_only


def test_server_pods_policy(built: list[dict[str, Any]]) -> None:
    deploy = find(built, "Deployment", "tke-eni-ip-webhook")
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 2
    assert pod["hostNetwork"] is True  # must not wait for an ENI IP itself
    assert pod["automountServiceAccountToken"] is False  # needs no API access
    sa = find(built, "ServiceAccount", pod["serviceAccountName"])
    assert sa.get("automountServiceAccountToken") is False
    bindings = [b for b in built if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and any(s.get("name") == sa["metadata"]["name"] for s in b["subjects"])]
    assert bindings == [], "the webhook server needs no RBAC"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    pdb = find(built, "PodDisruptionBudget", "tke-eni-ip-webhook")
    assert pdb["spec"]["minAvailable"] == 1


def test_certs_jobs_are_least_privilege(built: list[dict[str, Any]]) -> None:
    rules: list[dict[str, Any]] = []
    for b in built:
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(
                s.get("name") == "tke-eni-ip-webhook-certs" for s in b["subjects"]):
            role = find(built, b["roleRef"]["kind"], b["roleRef"]["name"])
            rules += [dict(r, scope=b["kind"]) for r in role["rules"]]
    assert sorted((r["scope"], tuple(r["resources"]), tuple(r["verbs"]),
                   tuple(r.get("resourceNames") or ())) for r in rules) == [
        ("ClusterRoleBinding", ("mutatingwebhookconfigurations",), ("get", "patch"), (MWC,)),
        ("RoleBinding", ("secrets",), ("create",), ()),
        ("RoleBinding", ("secrets",), ("get", "update"), ("tke-eni-ip-webhook-tls",)),
    ]
    for kind in ("Job", "CronJob"):
        job = find(built, kind, "tke-eni-ip-webhook-certs")
        spec = job["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else job["spec"]
        pod = spec["template"]["spec"]
        assert pod["serviceAccountName"] == "tke-eni-ip-webhook-certs"
        assert pod["restartPolicy"] == "OnFailure" and pod["hostNetwork"] is True
        (c,) = pod["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_cert_manager_option_builds(tmp_path: Path) -> None:
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [deploy]\ncomponents: [deploy/webhook/cert-manager]\n")
    objs = kustomize_build(tmp_path)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert ("Certificate", "tke-eni-ip-webhook") in kinds and ("Issuer", "tke-eni-ip-webhook") \
        in kinds
    assert not [k for k in kinds if k[1] == "tke-eni-ip-webhook-certs"], kinds
    cfg = find(objs, "MutatingWebhookConfiguration", MWC)
    assert cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == \
        f"{NS}/tke-eni-ip-webhook"
    cert = find(objs, "Certificate", "tke-eni-ip-webhook")
    deploy = find(objs, "Deployment", "tke-eni-ip-webhook")
    (volume,) = deploy["spec"]["template"]["spec"]["volumes"]
    assert cert["spec"]["secretName"] == volume["secret"]["secretName"]
    assert f"tke-eni-ip-webhook.{NS}.svc" in cert["spec"]["dnsNames"]
