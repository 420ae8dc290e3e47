"""The guide's use limits and its rp_filter warning, on the real cluster:

- "Nodes in the cluster must be in the same availability zone as the subnet ... pods
  cannot be scheduled": a node in a zone with no configured subnet gets no ENI, and a pod
  that can only go there stays Pending with the extender's reason in its FailedScheduling
  event;
- "If you manually configure the kernel parameters and enable rp_filter, network
  connection will fail": rp_filter re-enabled by hand is put back by the agent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localnode.netns import ip
from localnode.proc import run
from localrun.cloudspec import ZONE5
from localrun.environment import NO_SUBNET_NODE, ZONE_LABEL, Environment
from localrun.kube import wait_for
from localrun.pods import plain_pod
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e


def test_node_in_a_zone_without_subnet_gets_no_eni_pods_and_the_pod_says_why(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    pod = plain_pod("zone5", eni=True)
    pod["spec"]["nodeSelector"] = {ZONE_LABEL: ZONE5}
    kube.request("/api/v1/namespaces/default/pods", "POST", pod)
    try:
        def failed() -> list[dict[str, Any]]:
            return [e for e in kube.events("default", "Pod", "zone5")
                    if e.get("reason") == "FailedScheduling"
                    and "tke-eni-ip-scheduler" in e.get("message", "")]
        events = wait_for("FailedScheduling from the extender", failed, 60, detail=env.logs)
        msg = events[-1]["message"]
        assert f"zone {ZONE5} has no subnet in ConfigMap kube-system/tke-eni-ipamd" in msg, msg
        got = kube.pod("zone5")
        assert got is not None and got["status"]["phase"] == "Pending"
        assert not got["spec"].get("nodeName")
        # ipamd: no ENI for that node, and it says so on the node
        assert not kube.custom("vpcenis",
                               selector=f"tke.cloud.tencent.com/node={NO_SUBNET_NODE.name}")
        node_events = wait_for("NoSubnetInZone on the node", lambda: [
            e for e in kube.events("default", "Node", NO_SUBNET_NODE.name)
            if e.get("reason") == "NoSubnetInZone"], 60)
        assert ZONE5 in node_events[0]["message"], node_events
    finally:
        delete_and_wait(env, "/api/v1/namespaces/default/pods/zone5")


def sysctl(netns: str, key: str) -> str:
    return run(["sysctl", "-n", key], netns=netns).strip()


def test_rp_filter_enabled_by_hand_is_put_back_by_the_agent(guide_env: Environment) -> None:
    env = guide_env
    ns = env.real["node-a"].node.netns_name
    enis = {e["status"]["mac"] for e in env.kube.custom(
        "vpcenis", selector="tke.cloud.tencent.com/node=node-a")}
    links = json.loads(ip(ns, "-j", "link", "show"))
    eni_if = next(lk["ifname"] for lk in links if lk.get("address") in enis)
    keys = ["net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
            f"net.ipv4.conf.{eni_if}.rp_filter"]
    for key in keys:
        run(["sysctl", "-qw", f"{key}=1"], netns=ns)  # what the guide warns against
    for key in keys:
        wait_for(f"{key} back to 0 on node-a", lambda k=key: sysctl(ns, k) == "0", 60)
