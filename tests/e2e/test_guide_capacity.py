"""The scheduler sees what a node can use now (issue 15), on the local run (three real
nodes, S5.LARGE8: 27 eni-ip each; the agent's defaults: --cooldown 150, --cooldown-floor
30, --refill-wait 20):

- the guide's nginx Deployment scaled from 3 to 80: every pod Running and not one
  ``FailedCreatePodSandBox`` event (the scheduler places against what the nodes can use
  now, the ADD waits for ipamd's refill instead of failing); the time is printed;
- scaled back to 3, the deleted pods' IPs cool down: a new pod beyond what the nodes can
  use now stays Pending, and is Running once the IPs are usable again (the cooldown's
  floor here), not minutes later at kube-scheduler's flush; the time is printed;
- a subnet appended to the ConfigMap for a zone whose pod is Pending: the pod is bound
  within seconds (ipamd's ``TKEENISubnetRoom`` condition on the zone's nodes); printed."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from localcluster.fakenodes import FakeNode
from localrun.cloudspec import NODE_SUBNETS, ZONE5
from localrun.environment import INSTANCE_LABEL, NO_SUBNET_NODE, ZONE_LABEL, Environment
from localrun.kube import Kube, wait_for
from localrun.manifests import examples
from localrun.pods import ENI_IP, plain_pod, running_pod, running_pods, with_replicas
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e
COOLDOWN, FLOOR = 150.0, 30.0  # the agent's defaults
DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/nginx"
WAKE_NODE = "kwok-gz5-wake"  # the subnet wake-up test's own zone-5 node


def sandbox_failures(kube: Kube) -> list[dict[str, Any]]:
    return [e for e in kube.items("/api/v1/namespaces/default/events")
            if e.get("reason") == "FailedCreatePodSandBox"]


def free_slots(env: Environment) -> int:
    """eni-ip the real nodes advertise as allocatable, less what their pods request."""
    kube, total = env.kube, 0
    for name in env.real:
        node = kube.node(name) or {}
        total += int((node.get("status") or {}).get("allocatable", {}).get(ENI_IP, "0"))
    for p in kube.items("/api/v1/pods"):
        if p["spec"].get("nodeName") in env.real and p["status"].get("phase") in (
                "Pending", "Running"):
            for c in p["spec"]["containers"]:
                total -= int(((c.get("resources") or {}).get("requests") or {}).get(ENI_IP, 0))
    return total


def test_scale_up_without_failed_sandboxes_then_scale_down_and_a_new_pod(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    kube.apply(with_replicas(examples()["nginx"], 3))
    extra: list[str] = []
    try:
        running_pods(kube, "app=nginx", 3)
        before = {e["metadata"]["uid"] for e in sandbox_failures(kube)}
        start = time.monotonic()
        kube.merge_patch(DEPLOYMENT, {"spec": {"replicas": 80}})
        running_pods(kube, "app=nginx", 80, timeout=300)
        up = time.monotonic() - start
        failed = [e for e in sandbox_failures(kube) if e["metadata"]["uid"] not in before]
        count = sum(int(e.get("count") or 1) for e in failed)
        print(f"3 -> 80: all Running after {up:.1f} s; FailedCreatePodSandBox: {count}")
        why = Counter(str(e.get("message", "")).rsplit("(add): ", 1)[-1][:160] for e in failed)
        assert not failed, why.most_common(5)

        kube.merge_patch(DEPLOYMENT, {"spec": {"replicas": 3}})
        running_pods(kube, "app=nginx", 3, timeout=180)
        scaled_down = time.time()
        # what the nodes can use now (their deleted pods' IPs cool down): take it all, then one more
        def settled() -> tuple[int] | None:  # the same over more than a kubelet status period
            first = free_slots(env)
            time.sleep(4)
            return (first,) if free_slots(env) == first else None

        free = wait_for("allocatable settled after the scale-down", settled, 60)[0]
        for i in range(max(0, free)):
            extra.append(f"fill-{i}")
            kube.request("/api/v1/namespaces/default/pods", "POST",
                         plain_pod(extra[-1], eni=True))
        extra.append("late")
        created = time.monotonic()
        kube.request("/api/v1/namespaces/default/pods", "POST", plain_pod("late", eni=True))
        pod = running_pod(kube, "late", timeout=COOLDOWN + 60)
        waited = time.monotonic() - created
        since = time.time() - scaled_down
        print(f"after the scale-down ({free} slot(s) usable at once): the next pod Running "
              f"{waited:.1f} s after its creation, {since:.1f} s after the scale-down "
              f"(cooldown {COOLDOWN:g} s, floor {FLOOR:g} s)")
        assert pod["spec"]["nodeName"] in env.real
        assert since < COOLDOWN, "not Running before the full cooldown: the floor did not apply"
    finally:
        for name in extra:
            kube.delete(f"/api/v1/namespaces/default/pods/{name}")
        delete_and_wait(env, DEPLOYMENT, "app=nginx", timeout=300)
        for name in extra:
            wait_for(f"pod {name} gone", lambda n=name: kube.pod(n) is None, 120)


def test_a_subnet_appended_for_a_zone_wakes_its_pending_pods(guide_env: Environment) -> None:
    """A node of zone 5, where no pod subnet is configured: a pod pinned there is Pending
    (the extender: no subnet for the zone). An empty zone-5 subnet appended to the
    ConfigMap is accepted by ipamd, which marks the zone's nodes ``TKEENISubnetRoom=True``
    right after publishing its status: kube-scheduler retries the pod at once.

    The node is one of this test's own (an emulator instance + a kwok Node), deleted at
    the end with the ENI ipamd gave it: a kwok node has no agent to grant the release of
    a drained subnet's IPs, so an ENI left on kwok-gz5 would stay for the next tests."""
    env, kube = guide_env, guide_env.kube
    assert env.emulator is not None
    cm_path = "/api/v1/namespaces/kube-system/configmaps/tke-eni-ipamd"
    cm = kube.get(cm_path)
    assert cm is not None
    original = cm["data"]["TKE_ENI_IPAMD_SUBNET_ID"]
    vpc_id = cm["data"]["TKE_ENI_IPAMD_VPC_ID"]
    subnet = None
    for third in range(200, 250):  # an unused /24 of the VPC
        try:
            subnet = env.emulator.admin("POST", "/_admin/subnets", {
                "vpc_id": vpc_id, "cidr": f"10.0.{third}.0/24", "zone": ZONE5,
                "name": "pod-5"})["subnet_id"]
            break
        except OSError:  # 400: overlaps one an earlier run added
            continue
    assert subnet, "could not add a zone-5 subnet to the emulator"
    assert env.cp is not None
    ins = env.emulator.add_instance(NODE_SUBNETS[ZONE5], NO_SUBNET_NODE.instance_type,
                                    name=WAKE_NODE)
    env.cp.add_nodes([FakeNode(WAKE_NODE, allocatable={ENI_IP: "27"}, labels={
        ZONE_LABEL: ZONE5, INSTANCE_LABEL: ins,
        "node.kubernetes.io/instance-type": NO_SUBNET_NODE.instance_type})])
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("zone5", node_name=WAKE_NODE, eni=True))
    try:
        wait_for("pod zone5 refused for want of a zone-5 subnet", lambda: any(
            c.get("reason") == "Unschedulable" for c in
            ((kube.pod("zone5") or {}).get("status") or {}).get("conditions") or []), 60)
        appended = time.monotonic()
        kube.merge_patch(cm_path, {"data": {"TKE_ENI_IPAMD_SUBNET_ID": f"{original}:{subnet}"}})
        wait_for("pod zone5 bound", lambda: (kube.pod("zone5") or {}).get(
            "spec", {}).get("nodeName"), 120, detail=env.logs)
        took = time.monotonic() - appended
        node = kube.node(WAKE_NODE) or {}
        room = [c for c in node.get("status", {}).get("conditions", [])
                if c["type"] == "TKEENISubnetRoom"]
        print(f"subnet appended for zone 5 -> pending pod bound: {took:.1f} s; "
              f"condition {room}")
        assert room and room[0]["status"] == "True", room
        assert took <= 60.0, f"{took:.1f} s: the pod waited for something else than the wake-up"
    finally:
        kube.delete("/api/v1/namespaces/default/pods/zone5")
        wait_for("pod zone5 gone", lambda: kube.pod("zone5") is None, 120)
        kube.delete(f"/api/v1/nodes/{WAKE_NODE}")
        wait_for(f"{WAKE_NODE}'s ENI deleted", lambda: not kube.custom(
            "vpcenis", selector=f"tke.cloud.tencent.com/node={WAKE_NODE}"), 120,
            detail=env.logs)
        kube.merge_patch(cm_path, {"data": {"TKE_ENI_IPAMD_SUBNET_ID": original}})
