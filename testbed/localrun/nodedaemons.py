"""What runs beside each real node's kubelet, as the tke-eni-agent DaemonSet pod would:
the node agent (Kubernetes IP source, a default-network delegate for pods without the
annotation) and the device plugin (identity and limits from the emulated cloud)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localnode.node import Node
from localrun.programs import VENV_BIN


@dataclass(frozen=True)
class NodeSpec:
    name: str
    zone: str
    instance_type: str = "S5.LARGE8"


@dataclass
class RealNode:
    spec: NodeSpec
    instance_id: str
    private_ip: str
    node: Node
    pod_subnet: str  # default network (delegate bridge + host-local)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def agent_dir(self) -> Path:
        return self.node.workdir / "agent"


def delegate_plugins(rn: RealNode) -> list[dict[str, Any]]:
    """Global Router-style default network for pods that ask for no ENI IP."""
    return [{"type": "bridge", "bridge": "cni0", "isDefaultGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": rn.pod_subnet}]],
                      "dataDir": str(rn.node.workdir / "cni" / "ipam")}}]


def agent_argv(rn: RealNode, kubeconfig: Path, extra: tuple[str, ...] = ()) -> list[str]:
    """The agent's command line; writes its delegate file."""
    d, node = rn.agent_dir, rn.node
    d.mkdir(parents=True, exist_ok=True)
    (d / "delegate.json").write_text(json.dumps(delegate_plugins(rn)))
    return [str(VENV_BIN / "tke-eni-agent"), "--node-name", rn.name,
            "--socket", str(d / "cni.sock"), "--state-dir", str(d / "state"),
            "--ip-source", "kubernetes", "--pod-source", "kubernetes",
            "--kubeconfig", str(kubeconfig), "--delegate-file", str(d / "delegate.json"),
            "--reconcile-interval", "2",
            "--cni-bin-dir", str(node.cni_bin_dir), "--cni-conf-dir", str(node.cni_conf_dir),
            *extra]


def device_plugin_argv(rn: RealNode, metadata_url: str, cloud_endpoint: str) -> list[str]:
    return [str(VENV_BIN / "tke-eni-device-plugin"),
            "--device-plugin-dir", str(rn.node.device_plugin_dir),
            "--metadata-url", metadata_url, "--cloud-endpoint", f"http://{cloud_endpoint}",
            "--limits-source", "api", "--log-format", "text"]
