"""The emulated cloud the ipamd tests and benchmark run in (vpcsim's world spec), and
the Kubernetes objects they create for it, spelled with the wire names
(localcluster.objects holds them; tests/unit/test_testbed_objects.py checks the
product's core spells them the same way)."""

from __future__ import annotations

import zlib
from typing import Any

from localcluster.objects import (
    ANNOTATION_CLAIM_DELETE_POLICY,
    ANNOTATION_NETWORKS,
    CM_SUBNET_ID,
    CM_VPC_ID,
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    NETWORK_ROUTE_ENI,
    ZONE_LABEL,
)

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CLUSTER = "cls-test0001"
VPC = "vpc-sim00001"
ZONE3, ZONE4 = "ap-guangzhou-3", "ap-guangzhou-4"
POD_SUBNET3, POD_SUBNET4 = "subnet-sim00033", "subnet-sim00044"
NODE_SUBNET3, NODE_SUBNET4 = "subnet-sim00003", "subnet-sim00004"

#: emulator world: one VPC with node and pod subnets in two zones, plus another VPC
SPEC: dict[str, Any] = {
    "region": "ap-guangzhou",
    "vpcs": [
        {
            "id": VPC,
            "name": "tke-sim",
            "cidr": "10.0.0.0/16",
            "subnets": [
                {"id": NODE_SUBNET3, "name": "node-3", "cidr": "10.0.3.0/24", "zone": ZONE3},
                {"id": NODE_SUBNET4, "name": "node-4", "cidr": "10.0.4.0/24", "zone": ZONE4},
                {"id": POD_SUBNET3, "name": "pod-3", "cidr": "10.0.32.0/20", "zone": ZONE3},
                {"id": "subnet-sim00035", "name": "pod-3b", "cidr": "10.0.64.0/24", "zone": ZONE3},
                {"id": POD_SUBNET4, "name": "pod-4", "cidr": "10.0.48.0/20", "zone": ZONE4},
            ],
            "instances": [
                {"id": "ins-sim00001", "type": "S5.LARGE8", "subnet": "node-3"},
                {"id": "ins-sim00002", "type": "S5.LARGE8", "subnet": "node-4"},
                {"id": "ins-sim00003", "type": "S5.LARGE8", "subnet": "node-3"},
            ],
        },
        {
            "id": "vpc-sim00002",
            "name": "other",
            "cidr": "172.16.0.0/16",
            "subnets": [
                {"id": "subnet-sim00099", "name": "other", "cidr": "172.16.1.0/24", "zone": ZONE3}
            ],
        },
    ],
}
INSTANCE_ZONE = {"ins-sim00001": ZONE3, "ins-sim00002": ZONE4, "ins-sim00003": ZONE3}


def subnets_configmap(subnet_ids: str, vpc: str = VPC, **extra: str) -> dict[str, Any]:
    """The operator's ConfigMap naming the pod subnets (colon-separated ids)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIGMAP_NAMESPACE},
        "data": {CM_SUBNET_ID: subnet_ids, CM_VPC_ID: vpc, **extra},
    }


def node_manifest(name: str, instance_id: str, zone: str | None = None) -> dict[str, Any]:
    """A Node of the emulated instance ``instance_id`` (its zone from the world)."""
    zone = zone or INSTANCE_ZONE.get(instance_id, ZONE3)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {ZONE_LABEL: zone, INSTANCE_TYPE_LABEL: "S5.LARGE8"},
        },
        "spec": {"providerID": f"qcloud:///800003/{instance_id}"},
    }


def statefulset_owner(pod_name: str) -> dict[str, Any]:
    """The controller reference a StatefulSet's pod ``<set>-<ordinal>`` carries
    (the set need not exist: the test control plane runs no garbage collector)."""
    base = pod_name.rsplit("-", 1)[0]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": base,
        "uid": f"00000000-0000-4000-8000-{zlib.crc32(base.encode()):012d}",
        "controller": True,
    }


def pod_manifest(
    name: str,
    node: str,
    *,
    ns: str = "default",
    policy: str | None = "Never",
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A route-ENI pod bound to ``node``; with a claim delete ``policy`` it is a static-IP
    pod, owned by a StatefulSet unless ``owner`` says otherwise."""
    ann = {ANNOTATION_NETWORKS: NETWORK_ROUTE_ENI, **(annotations or {})}
    if policy is not None:
        ann[ANNOTATION_CLAIM_DELETE_POLICY] = policy
    meta: dict[str, Any] = {"name": name, "namespace": ns, "annotations": ann}
    if owner is None and policy is not None:
        owner = statefulset_owner(name)  # static IPs are for StatefulSet pods
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }
