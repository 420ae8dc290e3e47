"""The guide's "Using VPC-CNI": the nginx Deployment (annotation + eni-ip request/limit)
gets VPC IPs from the configured subnet of its node's zone, reachable across nodes
through the ENIs and the VPC fabric; a pod without the annotation in this mixed cluster
uses the default network (the agent's delegate: bridge + host-local)."""

from __future__ import annotations

import ipaddress

import pytest

from localrun.environment import Environment
from localrun.manifests import examples
from localrun.pods import exec_in, ping, plain_pod, running_pod, running_pods, with_replicas
from tests.fixtures_env import delete_and_wait, in_subnets, node_zone, pod_ip, zone_subnets

pytestmark = pytest.mark.e2e
REPLICAS = 3


def test_nginx_deployment_gets_vpc_ips_and_pods_reach_each_other_across_nodes(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    kube.apply(with_replicas(examples()["nginx"], REPLICAS))
    try:
        pods = running_pods(kube, "app=nginx", REPLICAS)
        vips = {v["metadata"]["name"]: v for v in kube.custom("vpcips")}
        for p in pods:
            node, ip = p["spec"]["nodeName"], pod_ip(p)
            assert node in env.real, f"{p['metadata']['name']} on {node}, not a real node"
            subnets = zone_subnets(env, node_zone(env, node))
            assert in_subnets(ip, subnets), f"{ip} not in {subnets} (zone of {node})"
            st = vips[ip].get("status") or {}
            assert vips[ip]["spec"]["nodeName"] == node
            assert (st.get("phase"), st.get("podName")) == ("InUse", p["metadata"]["name"]), st

        # a client pinned to the zone-4 node, a server pinned to a zone-3 node
        kube.request("/api/v1/namespaces/default/pods", "POST",
                     plain_pod("client-c", node_name="node-c", eni=True))
        kube.request("/api/v1/namespaces/default/pods", "POST",
                     plain_pod("server-a", node_name="node-a", eni=True, image="nginx"))
        client, server = running_pod(kube, "client-c"), running_pod(kube, "server-a")
        node_c = env.real["node-c"].node
        ok, out = ping(node_c, client, pod_ip(server))
        assert ok, f"ping {pod_ip(client)} (node-c) -> {pod_ip(server)} (node-a):\n{out}"
        for p in [*pods, server]:
            code, page = exec_in(node_c, client, ["wget", "-q", "-O", "-",
                                                  f"http://{pod_ip(p)}/"])
            assert code == 0 and "Welcome to nginx!" in page, (p["metadata"]["name"], page)
    finally:
        delete_and_wait(env, "/apis/apps/v1/namespaces/default/deployments/nginx", "app=nginx")
        for name in ("client-c", "server-a"):
            delete_and_wait(env, f"/api/v1/namespaces/default/pods/{name}")


def test_pod_without_the_annotation_uses_the_default_network(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    kube.request("/api/v1/namespaces/default/pods", "POST", plain_pod("plain", node_name="node-a"))
    try:
        pod = running_pod(kube, "plain")
        ip = pod_ip(pod)
        default_net = ipaddress.ip_network(env.real["node-a"].pod_subnet)
        assert ipaddress.ip_address(ip) in default_net, (ip, default_net)
        assert ip not in {v["metadata"]["name"] for v in kube.custom("vpcips")}
        code, out = exec_in(env.real["node-a"].node, pod, ["ip", "-4", "route"])
        gateway = str(next(default_net.hosts()))
        assert code == 0 and f"default via {gateway}" in out, out  # the node's bridge
        ok, out = ping(env.real["node-a"].node, pod, gateway)
        assert ok, out
    finally:
        delete_and_wait(env, "/api/v1/namespaces/default/pods/plain")
