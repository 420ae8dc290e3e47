"""API paths of the objects ipamd reads and writes."""

from __future__ import annotations

from core import names

_CRD = f"/apis/{names.CRD_GROUP}/{names.CRD_VERSION}"

NODES = "/api/v1/nodes"
PODS = "/api/v1/pods"
VPC_IPS = f"{_CRD}/{names.PLURAL_VPC_IP}"
VPC_ENIS = f"{_CRD}/{names.PLURAL_VPC_ENI}"
CLAIMS = f"{_CRD}/{names.PLURAL_VPC_IP_CLAIM}"
KUBE_SYSTEM_CONFIGMAPS = f"/api/v1/namespaces/{names.CONFIGMAP_NAMESPACE}/configmaps"


def node(name: str) -> str:
    return f"{NODES}/{name}"


def pod(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def vpc_ip(name: str) -> str:
    return f"{VPC_IPS}/{name}"


def vpc_eni(name: str) -> str:
    return f"{VPC_ENIS}/{name}"


def claims_in(namespace: str) -> str:
    return f"{_CRD}/namespaces/{namespace}/{names.PLURAL_VPC_IP_CLAIM}"


def claim(namespace: str, name: str) -> str:
    return f"{claims_in(namespace)}/{name}"


def configmap(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def events(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


def lease(namespace: str, name: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"


def leases(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def owner(api_version: str, kind: str, namespace: str, name: str) -> str | None:
    """Path of a namespaced owner object (StatefulSet, ...), or None if unknown."""
    plural = {
        "StatefulSet": "statefulsets",
        "Deployment": "deployments",
        "ReplicaSet": "replicasets",
        "DaemonSet": "daemonsets",
        "Job": "jobs",
        "CronJob": "cronjobs",
    }.get(kind)
    if plural is None:
        return None
    base = "/api" if api_version == "v1" else "/apis"
    return f"{base}/{api_version}/namespaces/{namespace}/{plural}/{name}"
