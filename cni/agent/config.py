"""Agent settings: every value has a CLI flag, an environment variable and a
default (flag > env > default, ``kit.settings``; documented in docs/cni.md,
printed by ``tke-eni-agent --help``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from core.models import SUBNET_STATUS_CONFIGMAP
from core.names import CONFIGMAP_NAMESPACE
from kit import logs
from kit.settings import Flag, SettingsError, Spec
from kit.settings import effective as effective_config

from .pool import host_veth_prefix_error

ENV_PREFIX = "TKE_ENI_AGENT_"


def _opt(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class AgentConfig:
    node_name: str = _opt(
        "", "this node's name (the label ipamd puts on its VpcENI/VpcIP); env NODE_NAME also works"
    )
    socket: str = _opt("/run/tke-eni-agent/cni.sock", "unix socket the tke-route-eni shim talks to")
    socket_read_timeout: float = _opt(
        5.0,
        "seconds a client of the socket has to send its request (and take the reply); "
        "a slow or stuck one is cut off",
    )
    socket_max_connections: int = _opt(
        128,
        "connections served at once on the socket; past it a new one gets CNI code 11 "
        "(try again) at once",
    )
    state_dir: str = _opt(
        "/var/lib/tke-eni-agent", "where the allocation checkpoint lives (keep it on the host)"
    )
    ip_source: str = _opt(
        "kubernetes", "where this node's ENIs/IPs come from: kubernetes (VpcENI/VpcIP) or file"
    )
    ip_source_file: str = _opt(
        "", "JSON file of ENIs and IPs for --ip-source=file (usage goes to <file>.status.json)"
    )
    pod_source: str = _opt(
        "kubernetes", "pod lookups (annotations, claims): kubernetes, file or none"
    )
    pod_source_file: str = _opt("", "JSON file of pods for --pod-source=file")
    kubeconfig: str = _opt("", "kubeconfig path; empty = in-cluster config")
    eni_only: bool = _opt(
        False, "every pod gets an ENI IP (cluster runs VPC-CNI only); else only annotated pods"
    )
    cooldown: float = _opt(
        150.0,
        "seconds a released IP rests before reuse (> conntrack's 120 s; docs/cni.md, "
        '"Cooldown"); kept across restarts',
    )
    cooldown_floor: float = _opt(
        30.0,
        "seconds a released IP rests at least: past it, a cooling IP is reused (earliest "
        "first) when the node has no other free IP; >= --cooldown = never",
    )
    refill_wait: float = _opt(
        20.0,
        "seconds ADD waits for a free IP (ipamd's refill, a cooldown's end) before code 11; "
        "0 = fail at once",
    )
    static_ip_wait: float = _opt(
        30.0, "seconds ADD waits for a static pod's IP to reach this node before code 11"
    )
    reconcile_interval: float = _opt(10.0, "seconds between passes of the host reconcile / GC loop")
    report_interval: float = _opt(
        30.0, "seconds between usage re-reports to the IP source (changes go at once)"
    )
    eni_mtu: int = _opt(1500, "MTU of ENI links and pod veths")
    host_veth_prefix: str = _opt(
        "tke",
        "prefix of host-side veth names (the rest is a hash of the pod): 1-7 letters, "
        "digits, '-', '_' or '.', so 8+ hex digits of the hash fit in 15 characters",
    )
    install_cni: bool = _opt(True, "install the plugin and the conflist at start")
    cni_bin_dir: str = _opt("/opt/cni/bin", "where the tke-route-eni executable is installed")
    cni_conf_dir: str = _opt("/etc/cni/net.d", "where the conflist is written")
    cni_conf_name: str = _opt("10-tke-route-eni.conflist", "the conflist's file name")
    cni_conf_overwrite: bool = _opt(
        False, "replace an existing conflist of that name that another CNI wrote"
    )
    cni_version: str = _opt(
        "1.0.0", "cniVersion of the written conflist (Debian's portmap speaks up to 1.0.0)"
    )
    cni_network_name: str = _opt("tke-route-eni", "network name in the conflist")
    cni_chain_file: str = _opt("", "JSON list of plugins chained after ours; empty = portmap")
    delegate_file: str = _opt(
        "", "JSON list of plugins for pods that do not ask for an ENI IP (e.g. bridge + host-local)"
    )
    plugin_python: str = _opt(sys.executable, "python interpreter the installed plugin runs with")
    health_address: str = _opt(
        "127.0.0.1:9867", "host:port of /healthz, /readyz, /metrics; empty = off"
    )
    nice: int = _opt(
        -5,
        "scheduling niceness of the agent (it is on every pod start's critical path: "
        "under a burst it should not queue behind the shims it serves); 0 = leave as is",
    )
    device_plugin_capacity_file: str = _opt(
        "",
        "capacity file the agent writes for tke-eni-device-plugin --capacity-file "
        "(this node's IP tally: in use, warm, cooling, reserved, leaving, can grow); "
        "empty = off",
    )
    device_plugin: bool = _opt(
        False,
        "also serve the device plugin (tke.cloud.tencent.com/eni-ip) in this process, "
        "configured by its TKE_ENI_DP_* environment variables (docs/device-plugin.md): one "
        "Python process per node instead of two (docs/node.md, Footprint)",
    )
    subnet_status_configmap: str = _opt(
        f"{CONFIGMAP_NAMESPACE}/{SUBNET_STATUS_CONFIGMAP}",
        "<namespace>/<name> of ipamd's subnet status ConfigMap, read (kubernetes IP source "
        "only) for --device-plugin-capacity-file",
    )
    log_level: str = _opt("info", "debug, info, warning or error (any case)")
    log_format: str = _opt("json", "json or text")
    fault: str = _opt(
        "",
        "testing only: SIGKILL the agent at this ADD step "
        "(clean-earlier, after-reserve, after-veth, after-pod, after-route, after-rules, "
        "before-reply); error:<step> raises a netlink error there once instead",
    )

    @property
    def checkpoint_path(self) -> str:
        return os.path.join(self.state_dir, "checkpoint.json")

    @property
    def subnet_status_ref(self) -> tuple[str, str]:
        """(namespace, name) of ``subnet_status_configmap`` (validated by ``parse``)."""
        namespace, _, name = self.subnet_status_configmap.partition("/")
        return namespace, name

    def effective(self) -> dict[str, Any]:
        return effective_config(self)


def _value_error(cfg: AgentConfig) -> str:
    """The first flag whose value cannot work, as an error message; "" if none."""
    problem = host_veth_prefix_error(cfg.host_veth_prefix)
    if problem is not None:
        return f"--host-veth-prefix {problem}"
    if cfg.socket_read_timeout <= 0:
        return f"--socket-read-timeout must be > 0, not {cfg.socket_read_timeout!r}"
    for name in ("cooldown", "cooldown_floor", "refill_wait"):
        if getattr(cfg, name) < 0:
            return f"--{name.replace('_', '-')} must be >= 0, not {getattr(cfg, name)!r}"
    if cfg.socket_max_connections < 1:
        return f"--socket-max-connections must be >= 1, not {cfg.socket_max_connections!r}"
    return ""


def _flags() -> tuple[Flag, ...]:
    out = []
    for f in fields(AgentConfig):
        if f.name in ("log_level", "log_format"):
            continue
        also = ("NODE_NAME",) if f.name == "node_name" else ()
        out.append(
            Flag(f.name, ENV_PREFIX + f.name.upper(), f.default, f.metadata["doc"], also_env=also)
        )
    return (*out, *logs.flags(ENV_PREFIX))


SPEC = Spec("tke-eni-agent", "TKE route-ENI node agent.", _flags())


def _check(values: dict[str, Any]) -> None:
    cfg = AgentConfig(**values)
    if cfg.ip_source not in ("kubernetes", "file"):
        raise SettingsError(f"--ip-source must be kubernetes or file, not {cfg.ip_source!r}")
    if cfg.pod_source not in ("kubernetes", "file", "none"):
        raise SettingsError(
            f"--pod-source must be kubernetes, file or none, not {cfg.pod_source!r}"
        )
    if cfg.ip_source == "file" and not cfg.ip_source_file:
        raise SettingsError("--ip-source=file needs --ip-source-file")
    if cfg.pod_source == "file" and not cfg.pod_source_file:
        raise SettingsError("--pod-source=file needs --pod-source-file")
    namespace, _, name = cfg.subnet_status_configmap.partition("/")
    if not namespace or not name or "/" in name:
        raise SettingsError(
            "--subnet-status-configmap must be <namespace>/<name>, "
            f"not {cfg.subnet_status_configmap!r}"
        )
    problem = _value_error(cfg)
    if problem:
        raise SettingsError(problem)
    if "kubernetes" in (cfg.ip_source, cfg.pod_source) and not cfg.node_name:
        raise SettingsError("--node-name (or NODE_NAME) is required with the kubernetes sources")


def parse(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> AgentConfig:
    """Flag > env > default; a bad value exits 2 with the usage and the reason."""
    return AgentConfig(**SPEC.load_or_exit(argv, environ, check=_check).values)
