"""Tests that play ipamd's part toward the node agent: create the VpcENI and
VpcIP objects ipamd would write for a node (labelled with the node, spec per
core.models), and report an ENI attached. One place, so every agent test
writes the same shapes ipamd does."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from core.names import (
    CRD_GROUP,
    CRD_VERSION,
    KIND_VPC_ENI,
    KIND_VPC_IP,
    NODE_LABEL,
    PLURAL_VPC_ENI,
    PLURAL_VPC_IP,
)


def create_vpc_eni(
    crd: client.CustomObjectsApi, eni_id: str, node: str, subnet_id: str, zone: str = ""
) -> Any:
    spec = {"nodeName": node, "subnetId": subnet_id}
    if zone:
        spec["zone"] = zone
    return crd.create_cluster_custom_object(
        CRD_GROUP,
        CRD_VERSION,
        PLURAL_VPC_ENI,
        {
            "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
            "kind": KIND_VPC_ENI,
            "metadata": {"name": eni_id, "labels": {NODE_LABEL: node}},
            "spec": spec,
        },
    )


def mark_eni_attached(
    crd: client.CustomObjectsApi,
    eni_id: str,
    *,
    mac: str,
    primary_ip: str,
    subnet_cidr: str,
    gateway: str,
) -> Any:
    return crd.patch_cluster_custom_object_status(
        CRD_GROUP,
        CRD_VERSION,
        PLURAL_VPC_ENI,
        eni_id,
        {
            "status": {
                "phase": "Attached",
                "mac": mac,
                "primaryIp": primary_ip,
                "subnetCidr": subnet_cidr,
                "gateway": gateway,
            }
        },
    )


def create_vpc_ip(
    crd: client.CustomObjectsApi,
    ip: str,
    node: str,
    eni_id: str,
    subnet_id: str,
    zone: str = "",
) -> Any:
    spec = {"nodeName": node, "eniId": eni_id, "subnetId": subnet_id}
    if zone:
        spec["zone"] = zone
    return crd.create_cluster_custom_object(
        CRD_GROUP,
        CRD_VERSION,
        PLURAL_VPC_IP,
        {
            "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
            "kind": KIND_VPC_IP,
            "metadata": {"name": ip, "labels": {NODE_LABEL: node}},
            "spec": spec,
        },
    )
