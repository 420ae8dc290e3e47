"""The agent reads the claim policy as ipamd and the extender do
(core.claimpolicy): a StatefulSet's pod annotated ``Never`` (whitespace
aside) waits for its claimed IP; any other pod annotated ``Never`` (a
Deployment's, a bare pod) gets a dynamic IP, as ipamd makes no claim for it."""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures_netns import AgentFactory, NetnsSet, Vpc
from tests.integration.test_agent_reconcile import add

NETWORKS = {"tke.cloud.tencent.com/networks": "tke-route-eni"}
POLICY = "tke.cloud.tencent.com/vpc-ip-claim-delete-policy"


def owner(kind: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": name,
        "uid": f"u-{name}",
        "controller": True,
    }


def test_never_on_a_deployment_pod_gives_a_dynamic_ip(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node, "--static-ip-wait", "0.5", eni_only=False)
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/api-7f9c-x2k8d": {
                    "uid": "u1",
                    "annotations": {**NETWORKS, POLICY: "Never"},
                    "ownerReferences": [owner("ReplicaSet", "api-7f9c")],
                },
            }
        )
    )
    pod = netns_set.add("a")
    rc, out = add(agent, pod, "api-7f9c-x2k8d")
    assert rc == 0, out
    assert out is not None and out["ips"][0]["address"] == "10.10.0.100/32", out


def test_never_with_spaces_on_a_statefulset_pod_is_static(
    vpc: Vpc, netns_set: NetnsSet, agents: AgentFactory
) -> None:
    node = vpc.add_node(1, [["10.10.0.20", "10.10.0.100"]])
    agent = agents(node, "--static-ip-wait", "0.5", eni_only=False)
    agent.pod_file.write_text(
        json.dumps(
            {
                "default/db-0": {
                    "uid": "u2",
                    "annotations": {**NETWORKS, POLICY: "Never "},
                    "ownerReferences": [owner("StatefulSet", "db")],
                },
            }
        )
    )
    pod = netns_set.add("d")
    rc, out = add(agent, pod, "db-0")
    # ipamd makes a claim for it, so the agent waits for the claimed IP (none
    # here): try again, never a dynamic IP
    assert rc != 0 and out and out["code"] == 11 and "default/db-0" in out["msg"], out
