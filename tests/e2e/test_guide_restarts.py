"""Restarts (DESIGN.md fault suite, on the real cluster):

- the kubelet restarted: our device plugin registers again, the eni-ip capacity comes back,
  and running pods keep their IPs and their networking;
- ipamd and a node agent killed (SIGKILL) and restarted in the middle of pod churn:
  afterwards the cloud and the CRDs agree (no leaked ENI or IP either way), no IP serves
  two pods, and every running ENI pod's IP is recorded in use by it."""

from __future__ import annotations

import time

import pytest

from localrun.environment import AGENT, CLUSTER_ID, ENI_IP, IPAMD, Environment
from localrun.invariants import cloud_vs_crds, pods_vs_ips
from localrun.kube import wait_for
from localrun.pods import NETWORKS_ANNOTATION, ping, plain_pod, running_pod, running_pods
from localrun.workloads import restarts
from tests.fixtures_env import delete_and_wait, pod_ip

pytestmark = pytest.mark.e2e
REGISTERED = ('"Got registration request from device plugin with resource" '
              f'resourceName="{ENI_IP}"')


def allocatable(env: Environment, node: str) -> str | None:
    got = env.kube.node(node)
    value = ((got or {}).get("status") or {}).get("allocatable", {}).get(ENI_IP)
    return value if value not in (None, "0") else None


def capacity(env: Environment, node: str) -> str | None:
    """The node's eni-ip limit (allocatable is what it can use at the moment, which moves
    with the warm pool and cooling IPs)."""
    got = env.kube.node(node)
    return ((got or {}).get("status") or {}).get("capacity", {}).get(ENI_IP)


def test_kubelet_restart_keeps_capacity_and_pod_networking(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    node_b = env.real["node-b"].node
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("web-b", node_name="node-b", eni=True, image="nginx"))
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("client-a", node_name="node-a", eni=True))
    try:
        web, client = running_pod(kube, "web-b"), running_pod(kube, "client-a")
        node_a = env.real["node-a"].node
        ok, out = ping(node_a, client, pod_ip(web))
        assert ok, out
        before = capacity(env, "node-b")
        assert before and allocatable(env, "node-b")
        registrations = node_b.kubelet_paths.log.read_text().count(REGISTERED)

        node_b.restart_kubelet()
        wait_for("the device plugin registered with the new kubelet", lambda: (
            node_b.kubelet_paths.log.read_text().count(REGISTERED) > registrations), 60)
        wait_for("node-b eni-ip allocatable again", lambda: allocatable(env, "node-b"), 60)
        assert capacity(env, "node-b") == before
        again = running_pod(kube, "web-b")
        assert again["metadata"]["uid"] == web["metadata"]["uid"]
        assert pod_ip(again) == pod_ip(web)
        ok, out = ping(node_a, client, pod_ip(web))
        assert ok, f"after the kubelet restart: {out}"
    finally:
        for name in ("web-b", "client-a"):
            delete_and_wait(env, f"/api/v1/namespaces/default/pods/{name}")


def churn_deployment(replicas: int) -> dict[str, object]:
    pod = plain_pod("churn", eni=True)
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "churn", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "churn"}},
                     "template": {"metadata": {"labels": {"app": "churn"},
                                               "annotations": {NETWORKS_ANNOTATION:
                                                               "tke-route-eni"}},
                                  "spec": pod["spec"]}}}


def test_ipamd_and_agent_killed_mid_churn_leak_nothing(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    assert env.emulator is not None
    deployment = "/apis/apps/v1/namespaces/default/deployments/churn"
    try:
        kube.apply(churn_deployment(8))
        time.sleep(1.5)  # pods are being bound and started: kill in the middle of it
        leader = wait_for("an ipamd leader", env.ipamd_leader, 60)
        ipamd = next(p for p in env.component_pods(IPAMD) if p["metadata"]["name"] == leader)
        agent = env.agent_pod("node-a")
        # a crash of both: SIGKILL of the containers' processes; the kubelet restarts them
        env.kill_component(ipamd, IPAMD)
        env.kill_component(agent, AGENT)
        kube.merge_patch(deployment, {"spec": {"replicas": 4}})
        for pod, container in ((ipamd, IPAMD), (agent, AGENT)):
            wait_for(f"{pod['metadata']['name']}/{container} restarted by the kubelet",
                     lambda pod=pod, container=container: restarts(
                         kube.pod(pod["metadata"]["name"], "kube-system") or {}, container)
                     > restarts(pod, container), 120, detail=env.logs)
        kube.merge_patch(deployment, {"spec": {"replicas": 10}})
        pods = running_pods(kube, "app=churn", 10, timeout=240)
        assert len({pod_ip(p) for p in pods}) == 10
        wait_for("every running pod's IP recorded as its own", lambda: not pods_vs_ips(
            kube.pods(), kube.custom("vpcips")), 60, detail=lambda: str(pods_vs_ips(
                kube.pods(), kube.custom("vpcips"))))
        kube.merge_patch(deployment, {"spec": {"replicas": 0}})
        wait_for("churn pods gone", lambda: not kube.pods(selector="app=churn"), 120)
        # ipamd's reconcile (every 10 s here) and the agents' reports settle the books
        wait_for("cloud and CRDs agree (no leaked ENI/IP)", lambda: not cloud_vs_crds(
            env.emulator.state(), kube.custom("vpcenis"), kube.custom("vpcips"), CLUSTER_ID)
            if env.emulator else False, 120, detail=lambda: str(cloud_vs_crds(
                env.emulator.state(), kube.custom("vpcenis"), kube.custom("vpcips"),
                CLUSTER_ID)) if env.emulator else "")

        def still_in_use() -> list[str]:
            return [f"{v['metadata']['name']} ({v['status']['podName']})"
                    for v in kube.custom("vpcips")
                    if (v.get("status") or {}).get("phase") == "InUse"
                    and v["status"].get("podName", "").startswith("churn-")]
        # the agents report each release (DEL) to the VpcIP status
        wait_for("no IP in use by a deleted churn pod", lambda: not still_in_use(), 90,
                 detail=lambda: str(still_in_use()))
    finally:
        if kube.get(deployment) is not None:
            delete_and_wait(env, deployment, "app=churn", timeout=180)
