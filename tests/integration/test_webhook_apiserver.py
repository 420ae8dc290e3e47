"""tke-eni-ip-webhook called by the real kube-apiserver over TLS, installed as in a
cluster (localrun.webhook: deploy/'s MutatingWebhookConfiguration — on loopback —,
the certs Job's command under its own ServiceAccount's RBAC, the Deployment's
container as a process), with kube-controller-manager turning Deployments into pods:

- the guide's Deployment without its resources block comes out with eni-ip in
  requests and limits; a pod that already asks, a hostNetwork pod and a kube-system
  pod are unchanged;
- `kubectl apply` of a Deployment with vpc-ip-claim-delete-policy: Never shows the
  warning;
- the webhook down with failurePolicy Fail: creation in covered namespaces fails with
  a clear message, kube-system still works; back up: creation works again;
- the certs command is idempotent, renews with a CA hand-over (the server reloads the
  new certificate, the apiserver keeps calling it), replaces an unusable Secret, and
  its ServiceAccount can touch nothing else.
"""

from __future__ import annotations

import base64
import copy
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.binaries import k8s_binaries
from localcluster.controlplane import ControlPlane
from localcluster.ports import free_ports
from localnode.kubeapi import ApiError
from localrun import manifests
from localrun.kube import Kube, wait_for
from localrun.webhook import CONFIGURATION, LocalWebhook
from tests.fixtures_controlplane import ControlPlaneFactory

ENI_IP = "tke.cloud.tencent.com/eni-ip"
NEVER = {"tke.cloud.tencent.com/vpc-ip-claim-delete-policy": "Never"}


class Env:
    def __init__(self, cp: ControlPlane, workdir: Path) -> None:
        self.cp = cp
        self.kube = Kube(cp.kubeconfig, cp.server)
        self.objs = manifests.kustomize_build()
        for obj in self.objs:  # the webhook's ServiceAccounts and RBAC, as deploy/ has them
            if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                               "ClusterRoleBinding") and \
                    obj["metadata"]["name"].startswith("tke-eni-ip-webhook"):
                self.kube.apply(obj)
        port, health = free_ports(2)
        self.webhook = LocalWebhook(self.objs, self.kube, workdir, port, health,
                                    credentials=self.credentials)

    def credentials(self, sa: str) -> Path:
        path = self.webhook.workdir / f"{sa}.kubeconfig"
        if not path.exists():
            self.kube.service_account_kubeconfig("kube-system", sa, path)
        return path

    def create_pod(self, body: dict[str, Any], ns: str = "default") -> dict[str, Any]:
        got = self.kube.request(f"/api/v1/namespaces/{ns}/pods", "POST", body)
        assert got is not None
        return got

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.webhook.health_url + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.split(" ")[0] == name:
                    return float(line.split()[-1])
        return 0.0

    def ca_bundles(self) -> list[bytes]:
        cfg = self.kube.get(f"/apis/admissionregistration.k8s.io/v1/"
                            f"mutatingwebhookconfigurations/{CONFIGURATION}")
        assert cfg is not None
        return [base64.b64decode(h["clientConfig"].get("caBundle", "")) for h in cfg["webhooks"]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    factory = ControlPlaneFactory()
    failed = True
    try:
        cp = factory(with_controller_manager=True)
        e = Env(cp, tmp_path_factory.mktemp("webhook"))
        e.webhook.up()
        yield e
        failed = False
    finally:
        if "e" in locals():
            e.webhook.stop()
        factory.close(keep_files=failed)


def bare_pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def resources(pod: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return dict(pod["spec"]["containers"][i].get("resources") or {})


def test_the_guides_deployment_without_resources_gets_the_request(env: Env) -> None:
    nginx = copy.deepcopy(manifests.examples()["nginx"])
    nginx["metadata"]["namespace"] = "default"
    del nginx["spec"]["template"]["spec"]["containers"][0]["resources"]
    env.kube.apply(nginx)

    def created() -> list[dict[str, Any]]:
        return env.kube.pods(selector="app=nginx")
    (pod,) = wait_for("the nginx Deployment's pod (kube-controller-manager)", created, 60)
    res = resources(pod)
    assert res["requests"][ENI_IP] == "1" and res["limits"][ENI_IP] == "1", res
    print(f"pod {pod['metadata']['name']} resources: {res}")


def test_a_pod_that_asks_is_unchanged(env: Env) -> None:
    body = bare_pod("asks")
    asked = {"requests": {"cpu": "100m", ENI_IP: "1"}, "limits": {ENI_IP: "1"}}
    body["spec"]["containers"].append({"name": "d", "image": "busybox",
                                       "resources": copy.deepcopy(asked)})
    pod = env.create_pod(body)
    assert resources(pod, 0) == {}
    assert resources(pod, 1) == asked


def test_a_pod_with_other_resources_keeps_them(env: Env) -> None:
    body = bare_pod("other", containers=[{"name": "c", "image": "busybox", "resources": {
        "requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}])
    res = resources(env.create_pod(body))
    # (the apiserver defaults a request from each limit: memory too)
    assert res == {"requests": {"cpu": "100m", "memory": "64Mi", ENI_IP: "1"},
                   "limits": {"memory": "64Mi", ENI_IP: "1"}}, res


def test_host_network_and_kube_system_pods_are_unchanged(env: Env) -> None:
    assert resources(env.create_pod(bare_pod("hostnet", hostNetwork=True))) == {}
    assert resources(env.create_pod(bare_pod("system"), "kube-system")) == {}
    opted_out = bare_pod("opted-out")
    opted_out["metadata"]["labels"] = {"tke.cloud.tencent.com/eni-ip-webhook": "skip"}
    assert resources(env.create_pod(opted_out)) == {}


def kubectl(env: Env, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(k8s_binaries().kubectl), "--kubeconfig", str(env.cp.kubeconfig),
                           *args], input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def test_kubectl_apply_shows_the_never_warning(env: Env) -> None:
    dep = copy.deepcopy(manifests.examples()["nginx"])
    dep["metadata"]["name"] = "static-nginx"
    dep["spec"]["selector"]["matchLabels"] = {"app": "static-nginx"}
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "static-nginx"}
    dep["spec"]["template"]["metadata"]["annotations"].update(NEVER)
    out = kubectl(env, "apply", "-n", "default", "-f", "-", stdin=yaml.safe_dump(dep))
    assert out.returncode == 0, out.stderr
    print(out.stderr.strip())
    assert "Warning: tke-eni-ip-webhook: Deployment static-nginx pod template:" in out.stderr
    assert "static IPs apply to StatefulSet pods only" in out.stderr
    # and the pod it makes still gets its request (the warning never blocks)
    (pod,) = wait_for("static-nginx's pod", lambda: env.kube.pods(selector="app=static-nginx"),
                      60)
    assert resources(pod)["limits"][ENI_IP] == "1"
    # a StatefulSet with Never: no warning
    sts = copy.deepcopy(manifests.examples()["busybox"])
    out = kubectl(env, "apply", "-n", "default", "-f", "-", stdin=yaml.safe_dump(sts))
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr


def test_webhook_down_fails_closed_with_a_clear_message_and_kube_system_still_works(
        env: Env) -> None:
    env.webhook.stop()
    try:
        with pytest.raises(ApiError) as err:
            env.create_pod(bare_pod("while-down"))
        text = str(err.value)
        print(text)
        assert "HTTP 500" in text and "pods.add-pod-eni-ip-limit-webhook" in text
        assert "failed calling webhook" in text and "connection refused" in text
        assert resources(env.create_pod(bare_pod("system-while-down"), "kube-system")) == {}
    finally:
        env.webhook.start()
        env.webhook.wait_ready()
    res = resources(env.create_pod(bare_pod("after-restart")))
    assert res["requests"][ENI_IP] == "1"


def test_certs_are_idempotent_renew_with_a_hand_over_and_replace_a_broken_secret(
        env: Env) -> None:
    (first,) = set(env.ca_bundles())
    log = env.webhook.provision()
    assert 'secret="kept"' in log and 'ca_bundle="unchanged"' in log, log
    assert set(env.ca_bundles()) == {first}

    # renewal: a new CA is trusted beside the old one before the Secret changes
    log = env.webhook.provision("--validity", "9500h", "--renew-before", "9000h")
    assert 'secret="renewed"' in log, log
    (bundle,) = set(env.ca_bundles())
    assert bundle.count(b"BEGIN CERTIFICATE") == 2 and first in bundle
    pod = env.create_pod(bare_pod("old-cert-new-bundle"))  # pods still serve the old one
    assert resources(pod)["limits"][ENI_IP] == "1"
    reloads = env.metric('tke_eni_webhook_tls_reloads_total{result="ok"}')
    env.webhook.secret_files()  # the kubelet refreshes the Secret volume

    def reloaded() -> bool:
        env.create_pod(bare_pod(f"new-cert-{time.monotonic_ns()}"))
        return env.metric('tke_eni_webhook_tls_reloads_total{result="ok"}') > reloads
    wait_for("the webhook to serve the renewed certificate", reloaded, 30, interval=0.5)

    # an unusable Secret (a key of another certificate) is replaced
    secret_path = "/api/v1/namespaces/kube-system/secrets/tke-eni-ip-webhook-tls"
    secret = env.kube.get(secret_path)
    assert secret is not None
    secret["data"]["tls.key"] = base64.b64encode(b"not a key").decode()
    env.kube.request(secret_path, "PUT", secret)
    log = env.webhook.provision()
    assert 'secret="renewed"' in log and "unreadable" in log, log


def test_certs_service_account_touches_nothing_else(env: Env) -> None:
    from kubernetes import client, config

    env.kube.request("/api/v1/namespaces/kube-system/secrets", "POST", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"},
        "data": {"x": "eA=="}})
    api = config.new_client_from_config(str(env.credentials("tke-eni-ip-webhook-certs")))
    core, adm = client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)
    for call in (lambda: core.read_namespaced_secret("other", "kube-system"),
                 lambda: core.list_namespaced_secret("default"),
                 adm.list_mutating_webhook_configuration,
                 lambda: adm.delete_mutating_webhook_configuration(CONFIGURATION)):
        with pytest.raises(client.ApiException) as err:
            call()
        assert err.value.status == 403
    assert core.read_namespaced_secret("tke-eni-ip-webhook-tls", "kube-system").data
    api.close()
