"""Our components as the cluster runs them: the pods of deploy/'s workloads, their
rollouts, the ipamd leader, and the host processes of a pod's container (for fault tests
that kill a component the way a crash would)."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from localnode.kubeapi import ApiError
from localnode.node import Node
from localrun.kube import Kube, wait_for

NS = "kube-system"
NAME_LABEL = "app.kubernetes.io/name"
IPAMD = "tke-eni-ipamd"
AGENT = "tke-eni-agent"
EXTENDER = "tke-eni-ip-scheduler"
WEBHOOK = "tke-eni-ip-webhook"
WEBHOOK_CERTS = "tke-eni-ip-webhook-certs"
#: (kind, name) of every workload deploy/ runs, in the order they matter at start
WORKLOADS = (("DaemonSet", AGENT), ("Deployment", IPAMD), ("Deployment", EXTENDER),
             ("Deployment", WEBHOOK))
_PATHS = {"DaemonSet": "daemonsets", "Deployment": "deployments"}


def workload_path(kind: str, name: str, namespace: str = NS) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{_PATHS[kind]}/{name}"


def pods_of(kube: Kube, app: str, namespace: str = NS) -> list[dict[str, Any]]:
    """The live pods of one component (``app.kubernetes.io/name``), oldest first."""
    pods = [p for p in kube.pods(namespace, f"{NAME_LABEL}={app}")
            if not p["metadata"].get("deletionTimestamp")]
    return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])


def is_ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def rolled_out(obj: Mapping[str, Any] | None) -> str | None:  # noqa: PLR0911
    """Why the workload is not rolled out yet ("" when it is; None when it is missing):
    what ``kubectl rollout status`` waits for."""
    if obj is None:
        return None
    spec, st = obj["spec"], obj.get("status") or {}
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
        return "generation not observed yet"
    if obj["kind"] == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        if want == 0:
            return "no node scheduled"
        if st.get("updatedNumberScheduled", 0) < want or st.get("numberAvailable", 0) < want:
            return (f"{st.get('updatedNumberScheduled', 0)}/{want} updated, "
                    f"{st.get('numberAvailable', 0)}/{want} available")
        return ""
    want = spec.get("replicas", 1)
    have = (st.get("updatedReplicas", 0), st.get("readyReplicas", 0), st.get("replicas", 0))
    if have[0] < want or have[1] < want or have[2] > want:
        return f"{have[0]}/{want} updated, {have[1]}/{want} ready, {have[2]} total"
    return ""


def wait_rolled_out(kube: Kube, kind: str, name: str, timeout: float = 180.0,
                    detail: Any = None) -> dict[str, Any]:
    last = ["missing"]

    def check() -> dict[str, Any] | None:
        obj = kube.get(workload_path(kind, name))
        why = rolled_out(obj)
        last[0] = "missing" if why is None else why
        return obj if why == "" else None
    return wait_for(f"{kind} {NS}/{name} rolled out (last: {last[0]})", check, timeout,
                    detail=detail)


def wait_all(kube: Kube, timeout: float = 240.0, detail: Any = None) -> None:
    for kind, name in WORKLOADS:
        wait_rolled_out(kube, kind, name, timeout, detail)

    def certs_done() -> bool:
        job = kube.get(f"/apis/batch/v1/namespaces/{NS}/jobs/{WEBHOOK_CERTS}")
        return bool(job and (job.get("status") or {}).get("succeeded"))
    wait_for(f"Job {NS}/{WEBHOOK_CERTS} succeeded", certs_done, timeout, detail=detail)
    wait_for("kube-apiserver reaching the admission webhook (a dry-run pod create)",
             lambda: webhook_reachable(kube), timeout, detail=detail)


#: a pod the webhook is called for (any namespace but the excluded ones); only ever
#: created with ``dryRun=All``, so nothing is stored and nothing runs
PROBE_POD = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "tke-webhook-probe", "namespace": "default"},
             "spec": {"containers": [{"name": "probe", "image": "busybox"}]}}


def webhook_reachable(kube: Kube) -> bool:
    """Whether kube-apiserver reaches the webhook now. The webhook's pods being Ready is
    not enough: the apiserver dials its Service through the egress proxy, whose
    ClusterIP rules come from the control plane's kube-proxy once it has seen the
    endpoints; until then a pod create fails (``failurePolicy: Fail``) with a 502 from
    the proxy. False on that refusal; any other error is raised."""
    try:
        kube.request("/api/v1/namespaces/default/pods?dryRun=All", "POST", PROBE_POD)
    except ApiError as exc:
        if "failed calling webhook" in str(exc):
            return False
        raise
    return True


def ipamd_leader(kube: Kube) -> str:
    """The pod name holding ipamd's Lease ("" when nobody does)."""
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{IPAMD}")
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


def container_pids(node: Node, pod: Mapping[str, Any], container: str) -> list[int]:
    """Host pids of the running container ``container`` of ``pod`` on ``node`` (from the
    container's cgroup, which the kubelet names after the pod UID and container id)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    cid = next((s.get("containerID", "") for s in statuses if s["name"] == container), "")
    cid = cid.split("://", 1)[-1]
    if not cid:
        raise LookupError(f"pod {pod['metadata']['name']}: container {container} has no id yet")
    uid = pod["metadata"]["uid"]
    pattern = f"/sys/fs/cgroup/memory{node.cgroup_root}/kubepods*/**/pod{uid}/{cid}/cgroup.procs"
    pids: list[int] = []
    for path in glob.glob(pattern, recursive=True):
        with open(path) as f:
            pids += [int(x) for x in f.read().split()]
    if not pids:
        raise LookupError(f"no process of {pod['metadata']['name']}/{container} "
                          f"(cgroup {pattern})")
    return pids


def kill_container(node: Node, pod: Mapping[str, Any], container: str,
                   sig: signal.Signals = signal.SIGKILL) -> Sequence[int]:
    """Signal every process of a running container (as a crash would); the kubelet
    restarts it (restartPolicy Always)."""
    pids = container_pids(node, pod, container)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    return pids


def restarts(pod: Mapping[str, Any], container: str) -> int:
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        if s["name"] == container:
            return int(s.get("restartCount", 0))
    return 0
