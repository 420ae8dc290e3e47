"""tke-eni-ip-webhook on real nodes (the local run): pods that name tke-route-eni
but do not ask for an ENI IP get the request from the webhook, so kube-scheduler
counts them and the extender sees them:

- one more such pod than a node has ENI IPs: all but one Running, the last one
  Pending with the scheduler's reason, and not one FailedCreatePodSandBox (before the
  webhook, the last pod was bound to the full node and stayed ContainerCreating);
  scaled up in steps the node's warm pool can serve at once;
- such a pod pinned to the zone without a subnet is Pending with the extender's
  reason instead of landing there;
- the webhook down (failurePolicy Fail): pod creation in covered namespaces is
  refused with a clear message, kube-system pods still start; back up, it works.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.models import IP_PHASE_FREE
from localnode.kubeapi import ApiError
from localrun.cloudspec import ZONE5
from localrun.environment import ENI_IP, ZONE_LABEL, Environment
from localrun.kube import wait_for
from localrun.pods import NETWORKS_ANNOTATION, plain_pod, running_pod, running_pods
from localrun.workloads import WEBHOOK, wait_rolled_out, workload_path
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e
NODE = "node-c"  # the only real node of its zone


def eni_ip_requests(pod: dict[str, Any]) -> int:
    return sum(int(((c.get("resources") or {}).get("requests") or {}).get(ENI_IP, 0))
               for c in pod["spec"]["containers"])


def deployment(name: str, replicas: int, selector: dict[str, str]) -> dict[str, Any]:
    """Annotated for an ENI IP, without the request (the webhook adds it)."""
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name},
                                               "annotations": {NETWORKS_ANNOTATION:
                                                               "tke-route-eni"}},
                                  "spec": {"nodeSelector": selector,
                                           "terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "main", "image": "busybox",
                                                           "command": ["sleep", "100000"]}]}}}}


def scheduling_message(pod: dict[str, Any]) -> str:
    for cond in pod["status"].get("conditions") or []:
        if cond["type"] == "PodScheduled" and cond["status"] == "False":
            return str(cond.get("message", ""))
    return ""


def free_ips(env: Environment, node: str) -> int:
    return sum(1 for v in env.kube.custom("vpcips", selector=f"tke.cloud.tencent.com/node={node}")
               if (v.get("status") or {}).get("phase") == IP_PHASE_FREE)


def test_one_pod_more_than_the_node_has_eni_ips(guide_env: Environment) -> None:
    """Scaled up in steps no larger than the node's warm IPs: a burst larger than the
    warm pool gets "no free IP on this node" sandbox retries until ipamd refills it,
    which is ipamd's pace and not what this checks; the last pod must find no room."""
    env, kube = guide_env, guide_env.kube
    node = kube.node(NODE)
    assert node is not None
    # the node's limit is its capacity; allocatable is what it can use now (IPs cooling
    # down after an earlier test are not), and it reaches the capacity as they cool off
    capacity = int(node["status"]["capacity"][ENI_IP])
    used = sum(eni_ip_requests(p) for p in kube.pods()
               if p["spec"].get("nodeName") == NODE and not p["metadata"].get(
                   "deletionTimestamp") and p["status"].get("phase") in ("Pending", "Running"))
    room = capacity - used
    print(f"{NODE}: {capacity} {ENI_IP} capacity ({node['status']['allocatable'][ENI_IP]} "
          f"allocatable now), {used} requested already: {room + 1} pods")
    replicas = 0
    try:
        while replicas < room:
            free = wait_for(f"a warm IP on {NODE}", lambda: free_ips(env, NODE), 120,
                            detail=env.logs)
            replicas = min(room, replicas + free)
            kube.apply(deployment("fill", replicas, {"kubernetes.io/hostname": NODE}))
            running_pods(kube, "app=fill", replicas, timeout=240)
        kube.apply(deployment("fill", room + 1, {"kubernetes.io/hostname": NODE}))

        def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            pods = [p for p in kube.pods(selector="app=fill")
                    if not p["metadata"].get("deletionTimestamp")]
            running = [p for p in pods if p["status"].get("phase") == "Running"
                       and p["status"].get("podIP")]
            pending = [p for p in pods if scheduling_message(p)]
            ok = len(running) == room and len(pending) == 1 and len(pods) == room + 1
            return (running, pending) if ok else None
        running, (pending,) = wait_for(f"{room} Running + 1 unschedulable", settled, 120,
                                       interval=2, detail=env.logs)
        for p in [*running, pending]:
            assert eni_ip_requests(p) == 1, p["spec"]["containers"]
            limits = p["spec"]["containers"][0]["resources"]["limits"]
            assert limits[ENI_IP] == "1"
        message = scheduling_message(pending)
        print(f"{len(running)} Running; {pending['metadata']['name']}: {message}")
        assert f"Insufficient {ENI_IP}" in message, message
        sandbox = [e for e in kube.items("/api/v1/namespaces/default/events")
                   if e.get("reason") == "FailedCreatePodSandBox"
                   and e["involvedObject"]["name"].startswith("fill-")]
        assert sandbox == [], [e["message"] for e in sandbox]
    finally:
        delete_and_wait(env, "/apis/apps/v1/namespaces/default/deployments/fill", "app=fill",
                        timeout=300)


def test_a_pod_of_a_zone_without_a_subnet_is_pending_with_the_extenders_reason(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    kube.apply(deployment("gz5", 1, {ZONE_LABEL: ZONE5}))
    try:
        def unschedulable() -> dict[str, Any] | None:
            pods = kube.pods(selector="app=gz5")
            return pods[0] if pods and scheduling_message(pods[0]) else None
        pod = wait_for("the gz5 pod to be refused by the scheduler", unschedulable, 120,
                       detail=env.logs)
        message = scheduling_message(pod)
        print(f"{pod['metadata']['name']}: {message}")
        assert not pod["spec"].get("nodeName")
        assert eni_ip_requests(pod) == 1
        assert f"zone {ZONE5} has no subnet" in message, message
    finally:
        delete_and_wait(env, "/apis/apps/v1/namespaces/default/deployments/gz5", "app=gz5")


def test_webhook_down_refuses_covered_pods_and_kube_system_pods_still_start(
        guide_env: Environment) -> None:
    """failurePolicy Fail: while no webhook answers, a pod in a covered namespace is
    refused with the apiserver's message; a kube-system pod is created and runs on a
    real node; once the webhook is back, creation works again."""
    env, kube = guide_env, guide_env.kube
    deployment = workload_path("Deployment", WEBHOOK)
    kube.merge_patch(deployment, {"spec": {"replicas": 0}})
    wait_for("no webhook pod left", lambda: not env.component_pods(WEBHOOK), 120)
    try:
        with pytest.raises(ApiError) as err:
            kube.request("/api/v1/namespaces/default/pods", "POST", plain_pod("while-down"))
        print(str(err.value)[:400])
        assert "failed calling webhook" in str(err.value)
        assert "pods.add-pod-eni-ip-limit-webhook.tke.cloud.tencent.com" in str(err.value)
        system = plain_pod("system-while-down", node_name="node-a")
        system["metadata"]["namespace"] = "kube-system"
        kube.request("/api/v1/namespaces/kube-system/pods", "POST", system)
        try:
            running_pod(kube, "system-while-down", "kube-system")
        finally:
            kube.request("/api/v1/namespaces/kube-system/pods/system-while-down", "DELETE",
                         {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
    finally:
        kube.merge_patch(deployment, {"spec": {"replicas": 2}})
        wait_rolled_out(kube, "Deployment", WEBHOOK, detail=env.logs)
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("after-restart", node_name="node-a"))
    try:
        pod = running_pod(kube, "after-restart")
        assert pod["metadata"]["name"] == "after-restart"
    finally:
        delete_and_wait(env, "/api/v1/namespaces/default/pods/after-restart")
    wait_for("system-while-down gone",
             lambda: kube.pod("system-while-down", "kube-system") is None, 120)
