"""kube-proxy where a cluster runs it: one per node (in the node's namespaces) and one on
the control-plane side of a local run, so ClusterIP Services work for pods, for
host-network pods (in-cluster config reaches the apiserver through the ``kubernetes``
Service) and for kube-scheduler (the scheduler extender's Service).

nftables mode: every kube-proxy keeps its rules in the table ``kube-proxy`` of its own
network namespace, so several nodes (and several local runs) on one machine never touch
each other's rules or the host's; deleting the namespace removes them. Conntrack sysctls
are left alone (they are machine-wide, not per namespace)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from localnode.proc import Daemon

KUBE_PROXY_ENV = "TKE_NODE_KUBE_PROXY"
SETUP_STEP = "hack/setup.sh (step: k8s build)"


def kube_proxy_binary() -> Path:
    explicit = os.environ.get(KUBE_PROXY_ENV)
    if explicit:
        return Path(explicit)
    from localcluster.binaries import bin_dir

    return bin_dir() / "kube-proxy"


def config(hostname: str, kubeconfig: Path, node_ip: str, *,
           healthz_port: int = 10256, metrics_port: int = 10249) -> dict[str, object]:
    """The KubeProxyConfiguration of one kube-proxy."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": hostname,
        "bindAddress": node_ip,
        "mode": "nftables",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # machine-wide sysctls: not ours to change
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }


def make_daemon(name: str, workdir: Path, kubeconfig: Path, node_ip: str, *,
                netns: str, mntns: str | None = None) -> Daemon:
    """kube-proxy for ``name`` (its Node, or any name without one) with its config under
    ``workdir``; not started."""
    binary = kube_proxy_binary()
    if not os.access(binary, os.X_OK):
        raise FileNotFoundError(f"kube-proxy binary {binary} not found: run {SETUP_STEP}")
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "kube-proxy.yaml"
    cfg.write_text(yaml.safe_dump(config(name, kubeconfig, node_ip)))
    return Daemon(f"kube-proxy[{name}]", [str(binary), f"--config={cfg}", "--v=1"],
                  log=workdir / "kube-proxy.log", netns=netns, mntns=mntns)
