"""Workloads on the local run: apply the guide's examples, wait for pods, run a command in
a pod's container through the node's CRI (ExecSync; ``kubectl exec`` has no
apiserver -> kubelet path here), read a pod's IP and where it came from."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from localnode.node import Node
from localrun.kube import Kube, wait_for

NETWORKS_ANNOTATION = "tke.cloud.tencent.com/networks"
POLICY_ANNOTATION = "tke.cloud.tencent.com/vpc-ip-claim-delete-policy"
ENI_IP = "tke.cloud.tencent.com/eni-ip"


def running_pods(kube: Kube, selector: str, count: int, namespace: str = "default",
                 timeout: float = 180.0) -> list[dict[str, Any]]:
    """Wait until ``count`` pods matching ``selector`` are Running with an IP (none
    terminating)."""
    def check() -> list[dict[str, Any]] | None:
        pods = [p for p in kube.pods(namespace, selector)
                if not p["metadata"].get("deletionTimestamp")]
        ok = [p for p in pods if p["status"].get("phase") == "Running"
              and p["status"].get("podIP")]
        return ok if len(ok) == count and len(pods) == count else None
    return wait_for(f"{count} Running pod(s) {selector}", check, timeout)


def running_pod(kube: Kube, name: str, namespace: str = "default", uid_not: str = "",
                timeout: float = 180.0) -> dict[str, Any]:
    """Wait for pod ``name`` Running with an IP (a new incarnation when ``uid_not``)."""
    def check() -> dict[str, Any] | None:
        p = kube.pod(name, namespace)
        if not p or p["metadata"].get("deletionTimestamp") or p["metadata"]["uid"] == uid_not:
            return None
        return p if p["status"].get("phase") == "Running" and p["status"].get("podIP") else None
    return wait_for(f"pod {namespace}/{name} Running", check, timeout)


def container_id(node: Node, pod: Mapping[str, Any]) -> str:
    name, ns = pod["metadata"]["name"], pod["metadata"]["namespace"]
    with node.cri() as cri:
        listed = cri.runtime.ListContainers(cri.pb.ListContainersRequest())
        for c in listed.containers:
            if (c.labels.get("io.kubernetes.pod.name") == name
                    and c.labels.get("io.kubernetes.pod.namespace") == ns
                    and c.labels.get("io.kubernetes.pod.uid") == pod["metadata"]["uid"]
                    and c.state == cri.pb.CONTAINER_RUNNING):
                return str(c.id)
    raise LookupError(f"no running container of pod {ns}/{name} on {node.name}")


def exec_in(node: Node, pod: Mapping[str, Any], cmd: list[str],
            timeout: int = 10) -> tuple[int, str]:
    """Run ``cmd`` in the pod's (first running) container, as ``kubectl exec`` would."""
    cid = container_id(node, pod)
    with node.cri() as cri:
        return cri.exec_sync(cid, cmd, timeout)


def ping(node: Node, pod: Mapping[str, Any], address: str, count: int = 2) -> tuple[bool, str]:
    code, out = exec_in(node, pod, ["ping", "-c", str(count), "-W", "2", address], timeout=15)
    return code == 0, out


def plain_pod(name: str, node_name: str = "", eni: bool = False,
              image: str = "busybox") -> dict[str, Any]:
    """A pod for the checks (busybox: a sleeper; nginx: the stand-in's web server), ENI or
    default network, optionally pinned to a node."""
    container: dict[str, Any] = {"name": "main", "image": image}
    if image == "busybox":
        container["command"] = ["sleep", "100000"]
    annotations: dict[str, str] = {}
    if eni:
        container["resources"] = {"requests": {ENI_IP: "1"}, "limits": {ENI_IP: "1"}}
        annotations[NETWORKS_ANNOTATION] = "tke-route-eni"
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if node_name:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node_name}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations,
                         "labels": {"app": name}},
            "spec": spec}


def with_replicas(workload: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    body = copy.deepcopy(dict(workload))
    body["spec"]["replicas"] = replicas
    return body
