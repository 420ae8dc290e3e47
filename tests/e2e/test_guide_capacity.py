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

from localrun.cloudspec import ZONE5
from localrun.environment import NO_SUBNET_NODE, Environment
from localrun.kube import Kube, wait_for
from localrun.manifests import examples
from localrun.pods import ENI_IP, plain_pod, running_pod, running_pods, with_replicas
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e
COOLDOWN, FLOOR = 150.0, 30.0  # the agent's defaults
DEPLOYMENT = "/apis/apps/v1/namespaces/default/deployments/nginx"


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
    """kwok-gz5 is in zone 5, where no pod subnet is configured: a pod pinned there is
    Pending (the extender: no subnet for the zone). An empty zone-5 subnet appended to the
    ConfigMap is accepted by ipamd, which marks the zone's nodes ``TKEENISubnetRoom=True``
    right after publishing its status: kube-scheduler retries the pod at once.

    At the end the zone is back without a subnet, and kwok-gz5 is deleted and registered
    again (as a replaced machine would be): ipamd gave it an ENI of the appended subnet,
    and a kwok node has no agent to grant the drain's release of its IPs, so the ENI would
    otherwise stay there for the next tests."""
    env, kube = guide_env, guide_env.kube
    assert env.emulator is not None and env.cp is not None
    fake = next(f for f in env.cp.kwok_nodes  # type: ignore[union-attr]
                if f.name == NO_SUBNET_NODE.name)
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
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("zone5", node_name=NO_SUBNET_NODE.name, eni=True))
    try:
        wait_for("pod zone5 refused for want of a zone-5 subnet", lambda: any(
            c.get("reason") == "Unschedulable" for c in
            ((kube.pod("zone5") or {}).get("status") or {}).get("conditions") or []), 60)
        appended = time.monotonic()
        kube.merge_patch(cm_path, {"data": {"TKE_ENI_IPAMD_SUBNET_ID": f"{original}:{subnet}"}})
        wait_for("pod zone5 bound", lambda: (kube.pod("zone5") or {}).get(
            "spec", {}).get("nodeName"), 120, detail=env.logs)
        took = time.monotonic() - appended
        node = kube.node(NO_SUBNET_NODE.name) or {}
        room = [c for c in node.get("status", {}).get("conditions", [])
                if c["type"] == "TKEENISubnetRoom"]
        print(f"subnet appended for zone 5 -> pending pod bound: {took:.1f} s; "
              f"condition {room}")
        assert room and room[0]["status"] == "True", room
        assert took <= 60.0, f"{took:.1f} s: the pod waited for something else than the wake-up"
    finally:
        kube.delete("/api/v1/namespaces/default/pods/zone5")
        wait_for("pod zone5 gone", lambda: kube.pod("zone5") is None, 120)
        kube.merge_patch(cm_path, {"data": {"TKE_ENI_IPAMD_SUBNET_ID": original}})
        kube.delete(f"/api/v1/nodes/{NO_SUBNET_NODE.name}")
        wait_for(f"{NO_SUBNET_NODE.name}'s ENI deleted", lambda: not kube.custom(
            "vpcenis", selector=f"tke.cloud.tencent.com/node={NO_SUBNET_NODE.name}"), 120,
            detail=env.logs)
        wait_for(f"Node {NO_SUBNET_NODE.name} gone",
                 lambda: kube.node(NO_SUBNET_NODE.name) is None, 60)
        env.cp.add_nodes([fake])
