"""The guide's "Static pod IP addresses": the busybox StatefulSet (served as apps/v1) with
``vpc-ip-claim-delete-policy: Never`` keeps its IP when its pod is deleted, and when the
pod moves to the other node of the same zone (its node cordoned); the IP answers from the
new node through the fabric (the plumber follows ipamd's MigratePrivateIpAddress)."""

from __future__ import annotations

import copy

import pytest

from localrun.cloudspec import ZONE3
from localrun.environment import ZONE_LABEL, Environment
from localrun.kube import wait_for
from localrun.manifests import examples
from localrun.pods import ping, plain_pod, running_pod
from tests.fixtures_env import delete_and_wait, in_subnets, pod_ip, zone_subnets

pytestmark = pytest.mark.e2e
CLAIM = "/apis/networking.tke.cloud.tencent.com/v1/namespaces/default/vpcipclaims/busybox-0"


def test_statefulset_keeps_its_ip_across_delete_and_a_move_within_the_zone(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    ex = examples()
    sts = copy.deepcopy(ex["busybox"])
    # the two real nodes of zone 3 are where it can move; the guide's YAML is otherwise as is
    sts["spec"]["template"]["spec"]["nodeSelector"] = {ZONE_LABEL: ZONE3}
    kube.apply(ex["busybox-svc"])
    kube.apply(sts)
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("prober", node_name="node-c", eni=True))
    cordoned = ""
    try:
        first = running_pod(kube, "busybox-0")
        ip, node = pod_ip(first), first["spec"]["nodeName"]
        assert in_subnets(ip, zone_subnets(env, ZONE3)), ip
        claim = wait_for("VpcIPClaim busybox-0 with the IP", lambda: (
            kube.get(CLAIM) or {}).get("status", {}).get("ip") == ip, 60)
        assert claim
        prober = running_pod(kube, "prober")
        node_c = env.real["node-c"].node

        # 1. deleted: recreated (new UID) with the same IP
        kube.delete("/api/v1/namespaces/default/pods/busybox-0")
        second = running_pod(kube, "busybox-0", uid_not=first["metadata"]["uid"])
        assert pod_ip(second) == ip, (pod_ip(second), ip)
        ok, out = ping(node_c, prober, ip)
        assert ok, out

        # 2. moved: its node cordoned, the pod deleted -> the other zone-3 node, same IP
        node = second["spec"]["nodeName"]
        other = next(n for n, rn in env.real.items() if rn.spec.zone == ZONE3 and n != node)
        kube.merge_patch(f"/api/v1/nodes/{node}", {"spec": {"unschedulable": True}})
        cordoned = node
        kube.delete("/api/v1/namespaces/default/pods/busybox-0")
        third = running_pod(kube, "busybox-0", uid_not=second["metadata"]["uid"])
        assert third["spec"]["nodeName"] == other, third["spec"]["nodeName"]
        assert pod_ip(third) == ip, (pod_ip(third), ip)
        vip = kube.get(f"/apis/networking.tke.cloud.tencent.com/v1/vpcips/{ip}")
        assert vip is not None and vip["spec"]["nodeName"] == other, vip
        ok, out = wait_for(f"ping {ip} on {other}", lambda: (
            r if (r := ping(node_c, prober, ip, count=1))[0] else None), 30)
        assert ok, out
    finally:
        if cordoned:
            kube.merge_patch(f"/api/v1/nodes/{cordoned}", {"spec": {"unschedulable": False}})
        delete_and_wait(env, "/apis/apps/v1/namespaces/default/statefulsets/busybox",
                        "app=busybox")
        delete_and_wait(env, "/api/v1/namespaces/default/services/busybox")
        delete_and_wait(env, "/api/v1/namespaces/default/pods/prober")
        delete_and_wait(env, CLAIM)  # kubectl delete vipc busybox-0: the IP goes back
