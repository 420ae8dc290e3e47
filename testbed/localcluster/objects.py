"""Kubernetes objects as plain dicts shaped like the API server's JSON: a Node (bare,
or ``full`` as a kubelet or kwok writes it), the CRDs' VpcIP, VpcENI and VpcIPClaim,
the subnet ConfigMap an operator writes and the status ConfigMap ipamd writes, a Pod
as the user's guide writes it, and the ExtenderArgs body a scheduler sends. For the
scheduler extender's tests and benchmark; pure.

The test bed knows the product only by its wire: every name below (annotations, the
eni-ip resource, the CRD group, the ConfigMaps and their keys, the phases) is spelled
here as users and the API see it; tests/unit/test_testbed_objects.py checks that the
product's core spells them the same way.
"""

from __future__ import annotations

import json
from typing import Any

Obj = dict[str, Any]

#: The product's wire names, as users and the API server see them.
RESOURCE_ENI_IP = "tke.cloud.tencent.com/eni-ip"
ANNOTATION_NETWORKS = "tke.cloud.tencent.com/networks"
NETWORK_ROUTE_ENI = "tke-route-eni"
ANNOTATION_CLAIM_DELETE_POLICY = "tke.cloud.tencent.com/vpc-ip-claim-delete-policy"
CLAIM_POLICY_NEVER = "Never"
CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "tke-eni-ipamd"
CM_SUBNET_ID = "TKE_ENI_IPAMD_SUBNET_ID"
CM_VPC_ID = "TKE_ENI_IPAMD_VPC_ID"
SUBNET_STATUS_CONFIGMAP = "tke-eni-ipamd-status"
SUBNET_STATUS_KEY = "subnets.json"
CRD_API_VERSION = "networking.tke.cloud.tencent.com/v1"
KIND_VPC_IP = "VpcIP"
KIND_VPC_ENI = "VpcENI"
KIND_VPC_IP_CLAIM = "VpcIPClaim"
NODE_LABEL = "tke.cloud.tencent.com/node"
ZONE_LABEL = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
IP_STATE_ASSIGNED = "Assigned"
IP_PHASE_FREE = "Free"
ENI_PHASE_ATTACHED = "Attached"
SUBNET_ACTIVE = "Active"


def node(
    name: str,
    zone: str | None,
    eni_ip: int | None = 30,
    *,
    legacy_zone: bool = False,
    full: bool = False,
) -> Obj:
    """A Node; ``full`` adds the status a real kubelet/kwok writes (the bulk a
    scheduler sends when nodeCacheCapable is false)."""
    labels = {"kubernetes.io/hostname": name, "type": "kwok"}
    if zone is not None:
        labels[LEGACY_ZONE_LABEL if legacy_zone else ZONE_LABEL] = zone
    allocatable = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    if eni_ip is not None:
        allocatable[RESOURCE_ENI_IP] = str(eni_ip)
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": f"uid-{name}"},
        "spec": {},
        "status": {"allocatable": allocatable, "capacity": dict(allocatable)},
    }
    if full:
        obj["metadata"].update(
            {
                "resourceVersion": "123456",
                "creationTimestamp": "2026-11-29T10:00:00Z",
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "kwok.x-k8s.io/node": "fake",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            }
        )
        obj["metadata"]["labels"].update(
            {
                "beta.kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "S5.2XLARGE32",
                "node-role.kubernetes.io/agent": "",
            }
        )
        obj["spec"] = {"providerID": f"qcloud:///{zone}/ins-{name[-8:]:0>8}", "podCIDR": ""}
        obj["status"].update(
            {
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [
                    {
                        "type": t,
                        "status": s,
                        "lastHeartbeatTime": "2026-11-29T10:00:00Z",
                        "lastTransitionTime": "2026-11-29T10:00:00Z",
                        "reason": r,
                        "message": m,
                    }
                    for t, s, r, m in (
                        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
                        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
                        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
                        ("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
                        ("NetworkUnavailable", "False", "RouteCreated", "ok"),
                    )
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "",
                    "containerRuntimeVersion": "containerd://1.6.20",
                    "kernelVersion": "6.1.0",
                    "kubeProxyVersion": "v1.31.0",
                    "kubeletVersion": "v1.31.0",
                    "machineID": "",
                    "operatingSystem": "linux",
                    "osImage": "TencentOS Server 3.1",
                    "systemUUID": "",
                },
                "images": [
                    {
                        "names": [f"ccr.ccs.tencentyun.com/library/image-{i}:v1.{i}"],
                        "sizeBytes": 1000000 + i,
                    }
                    for i in range(6)
                ],
            }
        )
    return obj


def vpc_ip(
    ip: str,
    node_name: str,
    *,
    subnet: str = "subnet-a",
    zone: str = "",
    state: str = IP_STATE_ASSIGNED,
    phase: str = IP_PHASE_FREE,
    claim: str = "",
    eni: str = "eni-1",
) -> Obj:
    spec: Obj = {"nodeName": node_name, "eniId": eni, "subnetId": subnet, "state": state}
    if zone:
        spec["zone"] = zone
    if claim:
        spec["claim"] = claim
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": KIND_VPC_IP,
        "metadata": {"name": ip, "labels": {NODE_LABEL: node_name}},
        "spec": spec,
        "status": {"phase": phase} if phase else {},
    }


def vpc_eni(eni_id: str, node_name: str, subnet: str, *, phase: str = ENI_PHASE_ATTACHED) -> Obj:
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": KIND_VPC_ENI,
        "metadata": {"name": eni_id, "labels": {NODE_LABEL: node_name}},
        "spec": {"nodeName": node_name, "subnetId": subnet},
        "status": {"phase": phase},
    }


def claim(
    namespace: str, name: str, ip: str = "", *, zone: str = "", subnet: str = "", phase: str = ""
) -> Obj:
    status = {
        k: v for k, v in {"ip": ip, "zone": zone, "subnetId": subnet, "phase": phase}.items() if v
    }
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": KIND_VPC_IP_CLAIM,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"policy": CLAIM_POLICY_NEVER},
        "status": status,
    }


def ipamd_configmap(
    *subnets: str, vpc: str = "vpc-test", namespace: str = CONFIGMAP_NAMESPACE
) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP_NAME, "namespace": namespace},
        "data": {CM_SUBNET_ID: ":".join(subnets), CM_VPC_ID: vpc},
    }


def subnet(
    subnet_id: str,
    zone: str,
    available: int = 100,
    total: int = 253,
    *,
    state: str = SUBNET_ACTIVE,
    reason: str = "",
) -> Obj:
    """One entry of the status ConfigMap's ``subnets.json`` (camelCase; an empty
    reason is left out, as ipamd writes it)."""
    entry: Obj = {
        "subnetId": subnet_id,
        "vpcId": "vpc-test",
        "zone": zone,
        "cidr": "10.0.0.0/24",
        "available": available,
        "total": total,
        "state": state,
    }
    if reason:
        entry["reason"] = reason
    return entry


def status_configmap(*subnets: Obj, namespace: str = CONFIGMAP_NAMESPACE) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": SUBNET_STATUS_CONFIGMAP, "namespace": namespace},
        "data": {SUBNET_STATUS_KEY: json.dumps(list(subnets), sort_keys=True)},
    }


def pod(
    name: str = "web-0",
    namespace: str = "default",
    eni_ip: int | None = 1,
    *,
    static: bool = False,
    uid: str = "",
) -> Obj:
    annotations = {ANNOTATION_NETWORKS: NETWORK_ROUTE_ENI}
    if static:
        annotations[ANNOTATION_CLAIM_DELETE_POLICY] = CLAIM_POLICY_NEVER
    resources: Obj = {}
    if eni_ip is not None:
        resources = {
            "requests": {RESOURCE_ENI_IP: str(eni_ip)},
            "limits": {RESOURCE_ENI_IP: str(eni_ip)},
        }
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"uid-{namespace}-{name}",
        "annotations": annotations,
    }
    if static:  # static IPs are for StatefulSet pods
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": name.rsplit("-", 1)[0],
                "uid": f"uid-sts-{namespace}-{name.rsplit('-', 1)[0]}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {
            "containers": [{"name": "app", "image": "nginx", "resources": resources}],
        },
    }


def filter_args(
    pod_obj: Obj, names: list[str] | None = None, nodes: list[Obj] | None = None
) -> bytes:
    """An ExtenderArgs body as a real scheduler sends it."""
    return json.dumps(
        {
            "Pod": pod_obj,
            "Nodes": None if nodes is None else {"metadata": {}, "items": nodes},
            "NodeNames": names if nodes is None else None,
        }
    ).encode()
