"""The node agent's credentials on a local node: a ServiceAccount token bound to an
agent pod on that node, as the kubelet's projected token is in a cluster.

deploy/agent/node-policy.yaml admits the agent's VpcIP status writes only for the
node named in its token (``authentication.kubernetes.io/node-name``, which the
API server takes from the bound pod's spec.nodeName). Here the agent runs as a
process, so a stand-in pod of the DaemonSet is put on the node (host network,
the node's local pause image: the kubelet runs it without our CNI) and the token
is requested for it. The pod must stay: deleting it revokes the token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from localnode.images import PAUSE_REF
from localrun.kube import Kube

NAMESPACE = "kube-system"


def standin_pod(service_account: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{service_account}-{node}",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": service_account,
                       "app.kubernetes.io/part-of": "tke-vpc-cni",
                       "tke-vpc-cni.local/stand-in": "true"},
            "annotations": {"tke-vpc-cni.local/note": f"stand-in: {service_account} runs as a "
                            "process on this node; its token is bound to this pod"},
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": service_account,
            "automountServiceAccountToken": False,
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "stand-in", "image": PAUSE_REF,
                            "imagePullPolicy": "Never"}],
        },
    }


def node_bound_kubeconfig(kube: Kube, service_account: str, node: str, path: Path,
                          expiration_s: int = 7 * 86400) -> Path:
    """A kubeconfig for ``service_account`` whose token is bound to its stand-in pod
    on ``node`` (created when missing)."""
    pod = standin_pod(service_account, node)
    name = pod["metadata"]["name"]
    pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
    live = kube.get(f"{pods}/{name}") or kube.request(pods, "POST", pod)
    if not live or not live.get("metadata", {}).get("uid"):
        raise RuntimeError(f"cannot create the stand-in pod {NAMESPACE}/{name}: {live}")
    got = kube.request(
        f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{service_account}/token", "POST",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": expiration_s,
                  "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name,
                                     "uid": live["metadata"]["uid"]}}})
    token = (got or {}).get("status", {}).get("token")
    if not token:
        raise RuntimeError(f"no token for {NAMESPACE}/{service_account} bound to pod {name}: "
                           f"{got}")
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    user = f"{service_account}@{node}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": user,
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "local", "user": user}}]}))
    path.chmod(0o600)
    return path
