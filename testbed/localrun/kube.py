"""The Kubernetes API as the harness uses it: the admin kubeconfig, JSON over TLS
(localnode.kubeapi), server-side apply of manifests, waits with bounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from localnode.kubeapi import api_request

T = TypeVar("T")
FIELD_MANAGER = "tke-localrun"

#: kind -> (API prefix, plural, namespaced) for what deploy/ and the examples contain.
KINDS: dict[str, tuple[str, str, bool]] = {
    "CustomResourceDefinition": ("/apis/apiextensions.k8s.io/v1", "customresourcedefinitions",
                                 False),
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "PriorityClass": ("/apis/scheduling.k8s.io/v1", "priorityclasses", False),
    "Secret": ("/api/v1", "secrets", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "MutatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                     "mutatingwebhookconfigurations", False),
    "ValidatingAdmissionPolicy": ("/apis/admissionregistration.k8s.io/v1",
                                  "validatingadmissionpolicies", False),
    "ValidatingAdmissionPolicyBinding": ("/apis/admissionregistration.k8s.io/v1",
                                         "validatingadmissionpolicybindings", False),
}
CRD_PREFIX = "/apis/networking.tke.cloud.tencent.com/v1"


class WaitTimeoutError(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last value."""


def wait_for(what: str, fn: Callable[[], T | None], timeout: float = 120.0,
             interval: float = 0.3, detail: Callable[[], str] | None = None) -> T:
    """Poll ``fn`` until it returns something truthy (a bound, never a timing assertion)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise WaitTimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; "
                              f"last: {last!r}{extra}")
        time.sleep(interval)


@dataclass(frozen=True)
class Kube:
    kubeconfig: Path
    server: str

    def request(self, path: str, method: str = "GET", body: Mapping[str, Any] | None = None,
                content_type: str = "application/json") -> dict[str, Any] | None:
        return api_request(self.kubeconfig, self.server, path, method, body,
                           content_type=content_type)

    def get(self, path: str) -> dict[str, Any] | None:
        return self.request(path)

    def items(self, path: str) -> list[dict[str, Any]]:
        got = self.request(path)
        return list(got["items"]) if got else []

    def merge_patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.request(path, "PATCH", body, "application/merge-patch+json")

    def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any] | None:
        # (api_request serialises any JSON value; a JSON patch is a list)
        return api_request(self.kubeconfig, self.server, path, "PATCH", cast(Any, ops),
                           content_type="application/json-patch+json")

    def delete(self, path: str) -> None:
        self.request(path, "DELETE")

    def object_path(self, obj: Mapping[str, Any]) -> str:
        kind = obj["kind"]
        if kind not in KINDS:
            raise ValueError(f"localrun cannot apply kind {kind} ({obj['metadata']['name']})")
        prefix, plural, namespaced = KINDS[kind]
        meta = obj["metadata"]
        ns = f"/namespaces/{meta.get('namespace') or 'default'}" if namespaced else ""
        return f"{prefix}{ns}/{plural}/{meta['name']}"

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Server-side apply (kubectl apply --server-side --force-conflicts)."""
        return self.request(f"{self.object_path(obj)}?fieldManager={FIELD_MANAGER}&force=true",
                            "PATCH", obj, "application/apply-patch+yaml")

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path,
                                   expiration_s: int = 7 * 86400) -> Path:
        """A kubeconfig authenticating as ServiceAccount ``namespace/name`` (a token from
        the TokenRequest API), so a program runs with the RBAC deploy/ gives it."""
        got = self.request(f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                           "POST", {"apiVersion": "authentication.k8s.io/v1",
                                    "kind": "TokenRequest",
                                    "spec": {"expirationSeconds": expiration_s}})
        if not got or not got.get("status", {}).get("token"):
            raise RuntimeError(f"no token for ServiceAccount {namespace}/{name}: {got}")
        admin = yaml.safe_load(self.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": name,
            "clusters": [{"name": "local", "cluster": cluster}],
            "users": [{"name": name, "user": {"token": got["status"]["token"]}}],
            "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}]}))
        path.chmod(0o600)
        return path

    # --- what the harness and the demo read -----------------------------------------------
    def pods(self, namespace: str = "default", selector: str = "") -> list[dict[str, Any]]:
        q = f"?labelSelector={selector}" if selector else ""
        return self.items(f"/api/v1/namespaces/{namespace}/pods{q}")

    def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.get(f"/api/v1/namespaces/{namespace}/pods/{name}")

    def node(self, name: str) -> dict[str, Any] | None:
        return self.get(f"/api/v1/nodes/{name}")

    def custom(self, plural: str, namespace: str | None = None,
               selector: str = "") -> list[dict[str, Any]]:
        ns = f"/namespaces/{namespace}" if namespace else ""
        q = f"?labelSelector={selector}" if selector else ""
        return self.items(f"{CRD_PREFIX}{ns}/{plural}{q}")

    def events(self, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
        sel = f"involvedObject.kind={kind},involvedObject.name={name}"
        return self.items(f"/api/v1/namespaces/{namespace}/events?fieldSelector={sel}")
