"""Allocatable tells the truth, with a real kubelet and a real kube-scheduler
(issue 15): one real node (localnode: containerd + kubelet) runs our node agent
(file IP source: one ENI with two pod IPs; ``--cooldown 8``) feeding our device
plugin through the capacity file. Two pods take both IPs; once they are
deleted the IPs cool down, the Node's allocatable ``eni-ip`` drops to 0 and a
third pod stays Pending (Insufficient); when the cooldown ends the agent's
feed, the plugin's ListAndWatch and the kubelet's status update raise the
allocatable again, and kube-scheduler binds the pod at once (its queueing
hint on the allocatable change), not at its 5-minute flush. The time from
the cooldown's end to the binding is printed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from localcluster.controlplane import ControlPlane
from localnode.node import Node
from localnode.vpc import Eni, NodeEnis, add_eni
from tests.fixtures_node import ENI_IP, NodeFactory, api, pod_manifest, wait_for, wait_running
from vpcsim.testing import run_emulator

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
COOLDOWN = 8.0
STATUS_EVERY = "3s"  # the kubelet's nodeStatusUpdateFrequency on this node
INSTANCE = "ins-sim00001"
ENI = Eni("eni-a1", "eth1", "02:00:00:00:0a:01", "va-e1", "10.0.32.0/20", "10.0.32.1",
          ["10.0.32.10", "10.0.32.11", "10.0.32.12"])
HOST = "kubernetes.io/hostname"


def start_node(factory: NodeFactory, cp: ControlPlane, emu: Any) -> Node:
    inst = next(i for i in emu.state()["instances"] if i["instance_id"] == INSTANCE)
    emu_port = int(urlsplit(emu.url).port or 0)
    node = factory.make(
        "node-cap", inst["zone"], cp, start=False, node_ip=f"{inst['private_ip']}/24",
        external_cni=True, provider_id=f"qcloud:///100003/{INSTANCE}",
        extra_forwards=[(emu_port, emu_port)], status_update_frequency=STATUS_EVERY)
    node.start_runtime()
    add_eni(node.fabric, node.netns_name, ENI)
    agent_dir = node.workdir / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    (agent_dir / "ips.json").write_text(json.dumps(NodeEnis([ENI]).ip_source()))
    capfile = agent_dir / "dp" / "eni-ip-capacity"
    node.run_daemon("agent", [
        str(BIN / "tke-eni-agent"), "--node-name", "node-cap",
        "--socket", str(agent_dir / "cni.sock"), "--state-dir", str(agent_dir / "state"),
        "--ip-source", "file", "--ip-source-file", str(agent_dir / "ips.json"),
        "--pod-source", "kubernetes", "--kubeconfig", str(cp.kubeconfig),
        "--cni-bin-dir", str(node.cni_bin_dir), "--cni-conf-dir", str(node.cni_conf_dir),
        "--cooldown", str(COOLDOWN), "--cooldown-floor", str(COOLDOWN),
        "--device-plugin-capacity-file", str(capfile)])
    node.run_daemon("device-plugin", [
        str(BIN / "tke-eni-device-plugin"), "--device-plugin-dir", str(node.device_plugin_dir),
        "--instance-type", "S5.LARGE8", "--limits-source", "table",
        "--metadata-url", emu.metadata_url(INSTANCE), "--capacity-file", str(capfile),
        "--log-format", "text"])
    node.start_kubelet()
    return node


def eni_ip(cp: ControlPlane, field: str) -> str | None:
    obj = api(cp, "/api/v1/nodes/node-cap")
    return obj["status"].get(field, {}).get(ENI_IP) if obj else None


def cooldown_end(node: Node) -> float:
    """The latest ``cooldownUntil`` the agent reported (unix time)."""
    status = json.loads((node.workdir / "agent" / "ips.json.status.json").read_text())
    return max(float(u.get("cooldownUntil") or 0) for u in status.values())


def test_pending_pod_is_bound_when_a_cooldown_ends(
        node_cluster: ControlPlane, node_factory: NodeFactory) -> None:
    cp = node_cluster
    with run_emulator() as emu:
        node = start_node(node_factory, cp, emu)
        # S5.LARGE8: capacity 27; the node holds 2 warm IPs and cannot grow (no ipamd)
        assert wait_for("capacity 27, allocatable 2", lambda: (
            eni_ip(cp, "capacity"), eni_ip(cp, "allocatable")) == ("27", "2") or None)
        pin = {HOST: "node-cap"}
        for name in ("web-1", "web-2"):
            api(cp, "/api/v1/namespaces/default/pods", "POST",
                pod_manifest(name, command=["sleep", "3600"], node_selector=pin, eni_ip=True))
        for name in ("web-1", "web-2"):
            wait_running(cp, name)
        for name in ("web-1", "web-2"):
            api(cp, f"/api/v1/namespaces/default/pods/{name}", "DELETE")
        for name in ("web-1", "web-2"):
            wait_for(f"{name} gone", lambda n=name: api(  # type: ignore[misc]
                cp, f"/api/v1/namespaces/default/pods/{n}") is None)
        # both IPs cool down: nothing usable now
        wait_for("allocatable 0 while the IPs cool down", lambda: eni_ip(cp, "allocatable") == "0")
        ends = cooldown_end(node)
        assert ends > time.time(), "the cooldown ended before the pod was created"
        api(cp, "/api/v1/namespaces/default/pods", "POST",
            pod_manifest("late", command=["sleep", "3600"], node_selector=pin, eni_ip=True))

        def bound() -> str | None:
            pod = api(cp, "/api/v1/namespaces/default/pods/late")
            return pod["spec"].get("nodeName") if pod else None

        wait_for("pod late Pending while the IPs cool down", lambda: (
            api(cp, "/api/v1/namespaces/default/pods/late") or {}).get("status", {}).get(
                "conditions") or None)
        assert bound() is None or time.time() >= ends, "bound before the cooldown ended"
        wait_for("pod late bound once the cooldown ends", bound, timeout=COOLDOWN + 60)
        bound_at = time.time()
        pod = wait_running(cp, "late")
        assert pod["status"]["podIP"] in ENI.ips[1:]
        print(f"cooldown end -> pod bound: {bound_at - ends:.1f} s "
              f"(kubelet status every {STATUS_EVERY}; cooldown {COOLDOWN:g} s)")
