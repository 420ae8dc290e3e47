"""A real kubelet for one local node: its config, its flags and the process.

Everything that a kubelet keeps under fixed host paths by default is moved under the
node's own dirs (root dir, pod logs, volume plugins, certs) so two kubelets share
nothing but the kernel; cgroups live under the node's own cgroup root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from localnode.images import PAUSE_REF
from localnode.proc import Daemon

KUBELET_ENV = "TKE_NODE_KUBELET"


@dataclass(frozen=True)
class KubeletPaths:
    base: Path

    @property
    def root_dir(self) -> Path:
        return self.base / "kubelet"

    @property
    def device_plugin_dir(self) -> Path:
        # fixed by the kubelet: <root-dir>/device-plugins (kubelet.sock lives there)
        return self.root_dir / "device-plugins"

    @property
    def pod_resources_socket(self) -> Path:
        return self.root_dir / "pod-resources" / "kubelet.sock"

    @property
    def config(self) -> Path:
        return self.base / "kubelet-config.yaml"

    @property
    def cert_dir(self) -> Path:
        return self.base / "kubelet-pki"

    @property
    def pod_logs(self) -> Path:
        return self.base / "pod-logs"

    @property
    def volume_plugins(self) -> Path:
        return self.base / "volume-plugins"

    @property
    def resolv_conf(self) -> Path:
        return self.base / "resolv.conf"

    @property
    def log(self) -> Path:
        return self.base / "kubelet.log"


@dataclass(frozen=True)
class KubeletSettings:
    node_name: str
    kubeconfig: Path
    runtime_endpoint: str  # unix:///.../containerd.sock
    cgroup_root: str  # e.g. /tke-node-a
    node_ip: str = ""
    provider_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    client_ca: Path | None = None
    max_pods: int = 32
    verbosity: int = 2
    status_update_frequency: str = "10s"  # how soon device-plugin capacity reaches the Node
    extra_args: Sequence[str] = ()
    feature_gates: Mapping[str, bool] = field(default_factory=dict)


def kubelet_config(s: KubeletSettings, paths: KubeletPaths) -> dict[str, object]:
    """The KubeletConfiguration (v1beta1) for this VM: cgroupfs on cgroup v1, no swap check,
    no systemd, no disk-pressure eviction, everything under the node's dirs."""
    cfg: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": s.cgroup_root,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": False,
        "failCgroupV1": False,
        "containerRuntimeEndpoint": s.runtime_endpoint,
        "imageServiceEndpoint": s.runtime_endpoint,
        "address": "0.0.0.0",
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(s.client_ca) if s.client_ca else ""}},
        "authorization": {"mode": "AlwaysAllow"},
        "registerNode": True,
        "maxPods": s.max_pods,
        "podLogsDir": str(paths.pod_logs),
        "volumePluginDir": str(paths.volume_plugins),
        "resolvConf": str(paths.resolv_conf),
        "clusterDomain": "cluster.local",
        "clusterDNS": [],
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%",
                         "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
        "nodeStatusUpdateFrequency": s.status_update_frequency,
        "nodeStatusReportFrequency": "1m",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
        "localStorageCapacityIsolation": True,
        "containerLogMaxSize": "1Mi",
        "containerLogMaxFiles": 2,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }
    if s.provider_id:
        cfg["providerID"] = s.provider_id
    if s.feature_gates:
        cfg["featureGates"] = dict(s.feature_gates)
    return cfg


def kubelet_argv(binary: Path, s: KubeletSettings, paths: KubeletPaths) -> list[str]:
    argv = [
        str(binary),
        f"--config={paths.config}",
        f"--kubeconfig={s.kubeconfig}",
        f"--root-dir={paths.root_dir}",
        f"--cert-dir={paths.cert_dir}",
        f"--hostname-override={s.node_name}",
        f"--pod-infra-container-image={PAUSE_REF}",
        f"--v={s.verbosity}",
    ]
    if s.node_ip:
        argv.append(f"--node-ip={s.node_ip}")
    if s.labels:
        argv.append("--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())))
    return [*argv, *s.extra_args]


def write_files(s: KubeletSettings, paths: KubeletPaths) -> None:
    for d in (paths.root_dir, paths.cert_dir, paths.pod_logs, paths.volume_plugins):
        d.mkdir(parents=True, exist_ok=True)
    # pods copy this; keep it free of the host's resolvers (no traffic leaves the machine)
    paths.resolv_conf.write_text("search cluster.local\noptions ndots:5\n")
    paths.config.write_text(yaml.safe_dump(kubelet_config(s, paths), sort_keys=False))


def make_daemon(binary: Path, s: KubeletSettings, paths: KubeletPaths,
                netns: str | None, mntns: str | None = None) -> Daemon:
    write_files(s, paths)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    return Daemon(f"kubelet[{s.node_name}]", kubelet_argv(binary, s, paths), log=paths.log,
                  netns=netns, env=env, mntns=mntns)
