"""The local run's real nodes, and the default network the agent gives pods that ask for
no ENI IP (the guide's mixed "Method 2" cluster): Debian's bridge + host-local on the
node's own podCIDR, configured once for every node through the agent's ConfigMap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localnode.node import Node

#: the cluster's pod range for the default network; each Node gets a /24 (node IPAM)
POD_CIDR = "10.244.0.0/16"
AGENT_CONFIG = "tke-eni-agent-config"  # deploy/agent/daemonset.yaml mounts it, optional
DELEGATE_FILE = "/etc/tke-eni-agent/delegate.json"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    zone: str
    instance_type: str = "S5.LARGE8"
    max_pods: int = 0  # the kubelet's --max-pods; 0 = localnode's default (32)


@dataclass
class RealNode:
    spec: NodeSpec
    instance_id: str
    private_ip: str
    node: Node
    pod_subnet: str = ""  # the default network's range on this node (its podCIDR)

    @property
    def name(self) -> str:
        return self.spec.name


def delegate_plugins() -> list[dict[str, Any]]:
    """Global Router-style default network: a bridge, host-local on the node's podCIDR
    (``usePodCidr``, filled in by the agent), addresses kept on the agent's state dir."""
    return [{"type": "bridge", "bridge": "cni0", "isDefaultGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "usePodCidr"}]],
                      "dataDir": "/var/lib/tke-eni-agent/delegate-ipam"}}]


def agent_config_map() -> dict[str, Any]:
    """The ConfigMap the agent's ``--delegate-file`` reads (a mixed cluster's choice)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": AGENT_CONFIG, "namespace": "kube-system"},
            "data": {Path(DELEGATE_FILE).name: json.dumps(delegate_plugins(), indent=1)}}


#: the agent's and the webhook's flags for a mixed cluster (deploy/ ships eni-only)
MIXED_AGENT_ARGS = ("--eni-only=false", f"--delegate-file={DELEGATE_FILE}")
MIXED_WEBHOOK_ARGS = ("--eni-only=false",)
