"""The guide's "Expanding the IP capacity": a subnet appended to TKE_ENI_IPAMD_SUBNET_ID in
ConfigMap kube-system/tke-eni-ipamd is used without restarting ipamd (unlike TKE, no pod
deletion is needed); a subnet that is not empty (it holds a CVM) is refused with a
Warning event on the ConfigMap, and the previous set stays in force."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcluster.fakenodes import FakeNode
from localrun.cloudspec import BUSY_SUBNET, NODE_SUBNETS, SPARE_SUBNET, ZONE3
from localrun.environment import ENI_IP, INSTANCE_LABEL, IPAMD, ZONE_LABEL, Environment
from localrun.kube import wait_for
from localrun.workloads import restarts
from tests.fixtures_env import configmap_subnets

pytestmark = pytest.mark.e2e
CM = "/api/v1/namespaces/kube-system/configmaps/tke-eni-ipamd"
NEW_NODE = "kwok-gz3-new"


def subnet_states(env: Environment) -> dict[str, str]:
    cm = env.kube.get("/api/v1/namespaces/kube-system/configmaps/tke-eni-ipamd-status")
    data = json.loads(((cm or {}).get("data") or {}).get("subnets.json") or "[]")
    return {s["subnetId"]: s.get("state", "Active") for s in data}


def set_subnets(env: Environment, subnets: list[str]) -> None:
    env.kube.merge_patch(CM, {"data": {"TKE_ENI_IPAMD_SUBNET_ID": ":".join(subnets)}})


def cm_events(env: Environment, reason: str) -> list[dict[str, Any]]:
    return [e for e in env.kube.events("kube-system", "ConfigMap", "tke-eni-ipamd")
            if e.get("reason") == reason]


def ipamd_incarnations(env: Environment) -> list[tuple[str, int]]:
    """(pod uid, restarts) of ipamd's pods: the same list means no ipamd restarted."""
    return [(p["metadata"]["uid"], restarts(p, IPAMD)) for p in env.component_pods(IPAMD)]


def test_subnet_appended_live_is_used_and_a_shared_subnet_is_refused(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    assert env.emulator is not None and env.cp is not None
    ipamd_pods = ipamd_incarnations(env)
    original = configmap_subnets(kube)
    try:
        # 1. append an empty subnet of zone 3: applied live
        set_subnets(env, [*original, SPARE_SUBNET])
        wait_for(f"{SPARE_SUBNET} Active in tke-eni-ipamd-status", lambda: subnet_states(
            env).get(SPARE_SUBNET) == "Active", 60, detail=env.logs)
        # used: a node joining zone 3 gets its ENI from the subnet with the most free IPs
        ins = env.emulator.add_instance(NODE_SUBNETS[ZONE3], "S5.LARGE8", name=NEW_NODE)
        env.cp.add_nodes([FakeNode(NEW_NODE, allocatable={ENI_IP: "27"}, labels={
            ZONE_LABEL: ZONE3, INSTANCE_LABEL: ins})])
        enis = wait_for(f"an Attached VpcENI on {NEW_NODE}", lambda: [
            e for e in kube.custom("vpcenis", selector=f"tke.cloud.tencent.com/node={NEW_NODE}")
            if (e.get("status") or {}).get("phase") == "Attached"], 90, detail=env.logs)
        assert {e["spec"]["subnetId"] for e in enis} == {SPARE_SUBNET}, enis

        # 2. append a subnet that holds a CVM: refused as a whole, with an event
        set_subnets(env, [*original, SPARE_SUBNET, BUSY_SUBNET])
        events = wait_for("InvalidSubnet event on the ConfigMap", lambda: cm_events(
            env, "InvalidSubnet"), 60, detail=env.logs)
        assert any(BUSY_SUBNET in e["message"] for e in events), events
        assert events[0]["type"] == "Warning"
        states = subnet_states(env)
        assert states.get(BUSY_SUBNET) != "Active", states
        assert states.get(SPARE_SUBNET) == "Active", states
        assert ipamd_incarnations(env) == ipamd_pods, "ipamd was restarted"
    finally:
        kube.delete(f"/api/v1/nodes/{NEW_NODE}")
        wait_for(f"{NEW_NODE}'s ENI deleted", lambda: not kube.custom(
            "vpcenis", selector=f"tke.cloud.tencent.com/node={NEW_NODE}"), 90)
        set_subnets(env, original)
        wait_for(f"{SPARE_SUBNET} gone from the status", lambda: SPARE_SUBNET not in
                 subnet_states(env), 60)
