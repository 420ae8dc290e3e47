"""Two real nodes in two emulated zones run our node agent and device plugin beside the
kubelet. Each node IS an instance of the cloud emulator: its IP, providerID and (through
the metadata service and DescribeNetworkInterfaceLimit, reached from inside the node)
its ENI limits come from there. Pods get ENI IPs from tke-route-eni through containerd,
the Node's eni-ip capacity comes from our device plugin through the kubelet's real
registration socket, and pods on different nodes reach each other through the emulated
VPC fabric."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core.limits import limits_for_type, max_pods
from localcluster.controlplane import ControlPlane
from localnode.node import ZONE_LABEL, Node
from localnode.vpc import Eni, NodeEnis, add_eni
from tests.fixtures_node import (
    ENI_IP,
    KWOK_NODES,
    NodeFactory,
    api,
    pod_manifest,
    wait_for,
    wait_running,
)
from vpcsim.testing import run_emulator

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
ZONE_IDS = {"ap-guangzhou-3": "100003", "ap-guangzhou-4": "100004"}


@dataclass(frozen=True)
class Spec:
    name: str
    instance_id: str  # in the emulator's default state
    eni: Eni


SPECS = (
    Spec("node-a", "ins-sim00001",
         Eni("eni-a1", "eth1", "02:00:00:00:0a:01", "va-e1", "10.0.32.0/20", "10.0.32.1",
             ["10.0.32.10", "10.0.32.11", "10.0.32.12"])),
    Spec("node-b", "ins-sim00002",
         Eni("eni-b1", "eth1", "02:00:00:00:0b:01", "vb-e1", "10.0.48.0/20", "10.0.48.1",
             ["10.0.48.10", "10.0.48.11", "10.0.48.12"])),
)


@pytest.fixture
def emulator() -> Iterator[Any]:
    with run_emulator() as emu:
        yield emu


def start_node(factory: NodeFactory, cp: ControlPlane, emu: Any, s: Spec) -> Node:
    inst = next(i for i in emu.state()["instances"] if i["instance_id"] == s.instance_id)
    emu_port = int(urlsplit(emu.url).port or 0)
    node = factory.make(
        s.name, inst["zone"], cp, start=False, node_ip=f"{inst['private_ip']}/24",
        external_cni=True, provider_id=f"qcloud:///{ZONE_IDS[inst['zone']]}/{s.instance_id}",
        extra_forwards=[(emu_port, emu_port)],  # metadata + cloud API, as seen from the node
        status_update_frequency="3s")
    node.start_runtime()
    add_eni(node.fabric, node.netns_name, s.eni)
    agent_dir = node.workdir / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    (agent_dir / "ips.json").write_text(json.dumps(NodeEnis([s.eni]).ip_source()))
    # as the DaemonSet would: hostNetwork (node netns), the node's CNI dirs and kubeconfig
    node.run_daemon("agent", [
        str(BIN / "tke-eni-agent"), "--node-name", s.name,
        "--socket", str(agent_dir / "cni.sock"), "--state-dir", str(agent_dir / "state"),
        "--ip-source", "file", "--ip-source-file", str(agent_dir / "ips.json"),
        "--pod-source", "kubernetes", "--kubeconfig", str(cp.kubeconfig),
        "--cni-bin-dir", str(node.cni_bin_dir), "--cni-conf-dir", str(node.cni_conf_dir)])
    # identity from the metadata service, limits from DescribeNetworkInterfaceLimit
    node.run_daemon("device-plugin", [
        str(BIN / "tke-eni-device-plugin"), "--device-plugin-dir", str(node.device_plugin_dir),
        "--metadata-url", emu.metadata_url(s.instance_id), "--cloud-endpoint",
        f"http://{emu.endpoint}", "--limits-source", "api", "--log-format", "text"],
        env={"TENCENTCLOUD_SECRET_ID": emu.secret_id, "TENCENTCLOUD_SECRET_KEY": emu.secret_key})
    node.start_kubelet()
    return node


def test_two_zones_route_eni_pods_and_device_plugin_capacity(
        node_cluster: ControlPlane, node_factory: NodeFactory, emulator: Any) -> None:
    cp, emu = node_cluster, emulator
    nodes = {s.name: start_node(node_factory, cp, emu, s) for s in SPECS}
    instances = {i["instance_id"]: i for i in emu.state()["instances"]}
    for s in SPECS:
        node, inst = nodes[s.name], instances[s.instance_id]
        assert (node.cni_conf_dir / "10-tke-route-eni.conflist").exists()
        obj = api(cp, f"/api/v1/nodes/{s.name}")
        assert obj is not None
        assert obj["metadata"]["labels"][ZONE_LABEL] == inst["zone"]
        assert obj["spec"]["providerID"].endswith("/" + s.instance_id)
        lim = limits_for_type(inst["instance_type"])

        def allocatable(name: str = s.name) -> str | None:
            o = api(cp, f"/api/v1/nodes/{name}")
            return o["status"].get("allocatable", {}).get(ENI_IP) if o else None
        want = str(max_pods(lim.enis, lim.ips_per_eni))
        assert wait_for(f"{s.name} {ENI_IP}", allocatable) == want
    listed = api(cp, "/api/v1/nodes")
    assert listed is not None and len(listed["items"]) == len(SPECS) + KWOK_NODES

    ips = {}
    for s in SPECS:
        zone = instances[s.instance_id]["zone"]
        pod_name = f"web-{s.name}"
        api(cp, "/api/v1/namespaces/default/pods", "POST",
            pod_manifest(pod_name, image="nginx", node_selector={ZONE_LABEL: zone},
                         eni_ip=True))
        pod = wait_running(cp, pod_name)
        assert pod["spec"]["nodeName"] == s.name
        assert pod["status"]["podIP"] in s.eni.ips[1:], pod["status"]
        ips[s.name] = pod["status"]["podIP"]

    # pod on node-a -> pod on node-b, through node-a's ENI, the fabric and node-b's ENI
    api(cp, "/api/v1/namespaces/default/pods", "POST",
        pod_manifest("client", command=["sleep", "3600"],
                     node_selector={ZONE_LABEL: instances[SPECS[0].instance_id]["zone"]},
                     eni_ip=True))
    wait_running(cp, "client")
    with nodes["node-a"].cri() as cri:
        listed_containers = cri.runtime.ListContainers(cri.pb.ListContainersRequest())
        cid = next(c.id for c in listed_containers.containers
                   if c.labels.get("io.kubernetes.pod.name") == "client")
        # (no `wget -T`: Debian's busybox-static wget segfaults with it, exit 139)
        code, out = cri.exec_sync(cid, ["wget", "-q", "-O", "-", f"http://{ips['node-b']}/"])
    assert code == 0 and "Welcome to nginx!" in out, out

    # kubelet restart: pods keep running, our device plugin re-registers on the new
    # kubelet.sock and the capacity comes back (a known field pain of TKE's own agent)
    node_b, inst_b = nodes["node-b"], instances[SPECS[1].instance_id]
    lim = limits_for_type(inst_b["instance_type"])
    node_b.restart_kubelet()
    # the kubelet's own log line for each Register call it serves
    registered = ('"Got registration request from device plugin with resource" '
                  f'resourceName="{ENI_IP}"')
    wait_for("device plugin registered with the restarted kubelet", lambda: (
        node_b.kubelet_paths.log.read_text().count(registered) >= 2) or None)

    def allocatable_b() -> str | None:
        o = api(cp, "/api/v1/nodes/node-b")
        got = o["status"].get("allocatable", {}).get(ENI_IP) if o else None
        return got if got not in (None, "0") else None
    assert wait_for("node-b eni-ip after kubelet restart", allocatable_b) == str(
        max_pods(lim.enis, lim.ips_per_eni))
    assert wait_running(cp, "web-node-b")["status"]["podIP"] == ips["node-b"]
