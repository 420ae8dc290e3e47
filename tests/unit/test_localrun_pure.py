"""localrun's pure parts: which ENIs the plumber plugs, the invariants after faults, a
container's process from a manifest, the demo's tables."""

from __future__ import annotations

from typing import Any

import pytest

from localrun.cloudspec import gateway_of, layout_from_configmap
from localrun.demo import subnet_of, table
from localrun.invariants import cloud_vs_crds, pods_vs_ips
from localrun.manifests import ManifestError, container_process, expand
from localrun.plumber import desired_links

STATE: dict[str, Any] = {
    "subnets": [{"subnet_id": "subnet-a", "cidr": "10.0.32.0/20", "zone": "z3"}],
    "enis": [
        {"eni_id": "eni-prim", "primary": True, "instance_id": "ins-1", "device_index": 0,
         "mac": "20:90:6F:00:00:01", "subnet_id": "subnet-a", "ips": [], "tags": {}},
        {"eni_id": "eni-1", "primary": False, "instance_id": "ins-1", "device_index": 1,
         "mac": "20:90:6F:00:00:02", "subnet_id": "subnet-a",
         "tags": {"tke-eni-cluster-id": "cls-1"},
         "ips": [{"address": "10.0.32.2", "primary": True},
                 {"address": "10.0.32.3", "primary": False}]},
        {"eni_id": "eni-kwok", "primary": False, "instance_id": "ins-9", "device_index": 1,
         "mac": "20:90:6F:00:00:03", "subnet_id": "subnet-a", "ips": [], "tags": {}},
        {"eni_id": "eni-free", "primary": False, "instance_id": None, "device_index": None,
         "mac": "20:90:6F:00:00:04", "subnet_id": "subnet-a", "ips": [], "tags": {}},
    ],
}


def test_plumber_plugs_secondary_enis_of_real_nodes_only() -> None:
    links = desired_links(STATE, {"ins-1": "tkl-node-a"})
    assert list(links) == ["eni-1"]
    link = links["eni-1"]
    assert (link.netns, link.ifname, link.mac, link.gateway) == (
        "tkl-node-a", "eth1", "20:90:6f:00:00:02", "10.0.32.1")
    assert link.ips == {"10.0.32.2", "10.0.32.3"}
    assert desired_links(STATE, {}) == {}


def vip(ip: str, eni: str, phase: str = "", pod: str = "") -> dict[str, Any]:
    return {"metadata": {"name": ip}, "spec": {"eniId": eni},
            "status": {"phase": phase, "podName": pod}}


def test_cloud_vs_crds_finds_leaks_both_ways() -> None:
    veni = [{"metadata": {"name": "eni-1"}}]
    assert cloud_vs_crds(STATE, veni, [vip("10.0.32.3", "eni-1")], "cls-1") == []
    assert cloud_vs_crds(STATE, [], [vip("10.0.32.3", "eni-1")], "cls-1") == [
        "leaked ENI eni-1 (no VpcENI; instance ins-1)"]
    assert cloud_vs_crds(STATE, veni, [], "cls-1") == ["leaked IP 10.0.32.3 on eni-1 (no VpcIP)"]
    got = cloud_vs_crds(STATE, [*veni, {"metadata": {"name": "eni-gone"}}],
                        [vip("10.0.32.3", "eni-1"), vip("10.0.32.9", "eni-1")], "cls-1")
    assert got == ["VpcENI eni-gone has no ENI in the cloud",
                   "VpcIP 10.0.32.9 says eni-1, the cloud has it on no ENI"]


def pod(name: str, ip: str, eni: bool = True) -> dict[str, Any]:
    ann = {"tke.cloud.tencent.com/networks": "tke-route-eni"} if eni else {}
    return {"metadata": {"name": name, "namespace": "default", "annotations": ann},
            "spec": {}, "status": {"phase": "Running", "podIP": ip}}


def test_pods_vs_ips() -> None:
    vips = [vip("10.0.32.3", "eni-1", "InUse", "a")]
    assert pods_vs_ips([pod("a", "10.0.32.3"), pod("p", "10.244.1.2", eni=False)], vips) == []
    assert pods_vs_ips([pod("a", "10.0.32.3"), pod("b", "10.0.32.3")], vips) == [
        "IP 10.0.32.3 used by default/a and default/b",
        "pod default/b runs with 10.0.32.3, VpcIP says phase InUse pod a"]
    assert pods_vs_ips([pod("c", "10.0.32.7")], vips) == [
        "pod default/c runs with 10.0.32.7, which has no VpcIP"]


def test_container_process_from_a_manifest() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "ns"},
          "data": {"A": "1"}}
    dep = {"kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"}, "spec": {
        "template": {"spec": {"containers": [{"name": "c"}]}}}}
    c = {"command": ["prog"], "args": ["--x", "$(POD_IP):9", "$(UNSET)"],
         "envFrom": [{"configMapRef": {"name": "cfg"}}],
         "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                 {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                              "optional": True}}}]}
    argv, env = container_process([cm, dep], dep, c, {"status.podIP": "127.0.0.1"})
    assert argv == ["--x", "127.0.0.1:9", "$(UNSET)"]
    assert env == {"A": "1", "POD_IP": "127.0.0.1"}
    with pytest.raises(ManifestError):
        container_process([], dep, {"envFrom": [{"secretRef": {"name": "s"}}]}, {})
    assert expand("$(A)-$(B)", {"A": "x"}) == "x-$(B)"


def test_layout_and_tables() -> None:
    layout = layout_from_configmap({"TKE_ENI_IPAMD_SUBNET_ID": "subnet-a:subnet-b",
                                    "TKE_ENI_IPAMD_VPC_ID": "vpc-1"})
    spec = layout.spec()
    assert {s["id"] for s in spec["vpcs"][0]["subnets"]} >= {"subnet-a", "subnet-b"}
    with pytest.raises(ValueError, match="two subnets"):
        layout_from_configmap({"TKE_ENI_IPAMD_SUBNET_ID": "subnet-a",
                               "TKE_ENI_IPAMD_VPC_ID": "vpc-1"})
    assert gateway_of("10.0.48.0/20") == "10.0.48.1"
    assert table([("a", 1)], ("NAME", "N")) == "  NAME  N\n  a     1"
    subnets = {"subnet-a": {"cidr": "10.0.32.0/20", "zone": "z3"}}
    assert subnet_of("10.0.32.9", subnets) == "VPC subnet-a (z3)"
    assert subnet_of("10.244.1.2", subnets).startswith("default network")
