"""``tke-eni-agent``: CLI -> config -> agent. Start order: load the checkpoint,
one reconcile pass (recovery against the live links), install the plugin and
conflist, open the socket; SIGTERM/SIGINT stop it gracefully."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

from kit import logs
from kit.httpserve import StatusServer
from kit.settings import log_effective

from . import checkpoint, config, devplugin, install, podcidr, recover
from .agent import Agent, AgentSettings
from .capacity_file import CapacityFilePublisher, pool_reader
from .dataplane.netops import NetOps
from .ipsource import FileNodeIpSource, NodeIpSource
from .metrics import Metrics
from .pods import FilePodSource, PodSource
from .reconcile import Reconciler
from .reporter import Reporter
from .server import CniSocketServer

log = logging.getLogger("tke-eni-agent")


def build_sources(cfg: config.AgentConfig) -> tuple[NodeIpSource, PodSource | None]:
    source: NodeIpSource
    if cfg.ip_source == "file":
        source = FileNodeIpSource(cfg.ip_source_file)
    else:
        from .sources.kube_ipsource import KubeNodeIpSource, load_kube_config

        source = KubeNodeIpSource(load_kube_config(cfg.kubeconfig), cfg.node_name)
    pods: PodSource | None = None
    if cfg.pod_source == "file":
        pods = FilePodSource(cfg.pod_source_file)
    elif cfg.pod_source == "kubernetes":
        from .sources.kube_ipsource import load_kube_config
        from .sources.kube_pods import KubePodSource

        pods = KubePodSource(load_kube_config(cfg.kubeconfig))
    return source, pods


def install_cni(cfg: config.AgentConfig) -> None:
    install.install_plugin(cfg.cni_bin_dir, cfg.plugin_python, cfg.socket)
    chain = (
        install.load_json_list(cfg.cni_chain_file, "chain")
        if cfg.cni_chain_file
        else install.DEFAULT_CHAIN
    )
    delegates = install.load_json_list(cfg.delegate_file, "delegates") if cfg.delegate_file else []
    if podcidr.needs_pod_cidr(delegates):
        from .sources.kube_ipsource import load_kube_config
        from .sources.kube_node import wait_pod_cidr

        cidr = wait_pod_cidr(load_kube_config(cfg.kubeconfig), cfg.node_name)
        delegates = podcidr.with_pod_cidr(delegates, cidr)
        log.info("default network on the node's podCIDR", extra={"pod_cidr": cidr})
    conflist = install.build_conflist(
        cfg.cni_network_name,
        cni_version=cfg.cni_version,
        socket_path=cfg.socket,
        chain=chain,
        delegates=delegates,
        host_veth_prefix=cfg.host_veth_prefix,
    )
    install.install_conflist(cfg.cni_conf_dir, cfg.cni_conf_name, conflist, cfg.cni_conf_overwrite)


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def start_capacity_feed(
    cfg: config.AgentConfig, agent: Agent, reporter: Reporter | None = None
) -> list[_Stoppable]:
    """The device plugin's capacity file (off when the path is empty): the
    agent's pool and IP view, and the phases the API holds; with the
    kubernetes IP source, ipamd's subnet status ConfigMap is watched too (with
    the file source there is no status: the node cannot grow, only warm IPs
    count). Every ADD/DEL pokes it, and so does every status write the API
    accepted (``reporter``): a rise reaches the file after the API, a fall
    before it (``capacity_file``). Returns what to stop, in order."""
    if not cfg.device_plugin_capacity_file:
        return []
    source = agent.source
    publisher = CapacityFilePublisher(
        cfg.device_plugin_capacity_file, source, metrics=agent.metrics
    )
    publisher.pool = pool_reader(agent.lock, agent.state)
    on_change = agent.on_change

    def changed() -> None:
        on_change()
        publisher.poke()

    agent.on_change = changed
    if reporter is not None:
        reporter.after_report = publisher.poke
    started: list[_Stoppable] = [publisher]
    if cfg.ip_source == "kubernetes":
        from .sources.kube_ipsource import load_kube_config
        from .sources.kube_subnets import KubeSubnetStatusWatch

        namespace, name = cfg.subnet_status_ref
        status = KubeSubnetStatusWatch(
            load_kube_config(cfg.kubeconfig), namespace, name, on_change=publisher.poke
        )
        publisher.subnets = status.current
        status.start()
        started.append(status)
    publisher.start()
    return started


def load_state(cfg: config.AgentConfig) -> checkpoint.Loaded:
    """The checkpoint, said loudly when it cannot be used: the caller then
    rebuilds the allocations from the live links (``recover``)."""
    loaded = checkpoint.load_checked(cfg.checkpoint_path)
    state = loaded.state
    state.early_reuse = max(0.0, cfg.cooldown - cfg.cooldown_floor)  # not in the checkpoint
    log.info(
        "checkpoint loaded",
        extra={
            "allocations": len(state.allocations),
            "cooldown": len(state.cooldown),
            "missing": loaded.missing,
        },
    )
    if loaded.unreadable:
        log.error(
            "checkpoint unreadable: rebuilding the allocations from the live links; nothing "
            "unexplained is deleted, and ADD is refused until every live pod link is accounted for",
            extra={
                "path": cfg.checkpoint_path,
                "error": loaded.unreadable,
                "kept_as": loaded.kept_as,
            },
        )
    return loaded


def start_recovery(cfg: config.AgentConfig, agent: Agent, loaded: checkpoint.Loaded) -> None:
    """Without a usable checkpoint the start-up pass rebuilds the allocations
    from the live links and deletes nothing it cannot explain; a first start
    (no links of ours) ends that at once. With the Kubernetes IP source the
    agent's Events go to its Node."""
    if cfg.ip_source == "kubernetes":
        from .sources.kube_events import NodeEvents
        from .sources.kube_ipsource import load_kube_config

        agent.events = NodeEvents(load_kube_config(cfg.kubeconfig), cfg.node_name)
    if loaded.state.recovering:  # a restart in the middle of a rebuild
        agent.recovery.begin(loaded.state.recovering)
        log.warning(
            "rebuild from the live links unfinished before the restart: going on",
            extra={"reason": loaded.state.recovering},
        )
    elif loaded.unreadable:
        agent.metrics.checkpoint_unreadable.inc()
        agent.recovery.begin("the checkpoint was unreadable")
        agent.events(
            "Warning",
            "CheckpointUnreadable",
            f"tke-eni-agent could not read its checkpoint ({loaded.unreadable}; kept as "
            f"{loaded.kept_as}): rebuilding the pods' allocations from the live links; "
            "nothing is deleted and no new pod gets an IP until every live pod link is "
            "accounted for",
        )
    elif loaded.missing:  # a first start; or a wiped state dir while pods run
        agent.recovery.begin(recover.NO_CHECKPOINT)
    if agent.recovery.active:  # persisted by the start-up pass's writes
        agent.state.recovering = agent.recovery.reason


def start_health(
    cfg: config.AgentConfig, agent: Agent, reconciler: Reconciler, metrics: Metrics
) -> StatusServer | None:
    """/healthz (the loops run), /readyz, /metrics on --health-address."""
    if not cfg.health_address:
        return None

    def healthy() -> tuple[bool, str]:
        fresh = time.monotonic() - reconciler.last_pass < 3 * cfg.reconcile_interval + 30
        ok = reconciler.alive() and fresh
        return ok, "ok" if ok else "loops stalled"

    return StatusServer(
        cfg.health_address,
        registries=[metrics.registry],
        healthy=healthy,
        ready=lambda: (agent.ready.is_set(), "ready" if agent.ready.is_set() else "not ready"),
        name="agent",
    ).start()


def wait_stop(stop: threading.Event, plugin: devplugin.Embedded | None) -> int:
    """Until asked to stop (0), or until the in-process device plugin's loop
    dies (1: the pod restarts)."""
    while not stop.wait(None if plugin is None else 1.0):
        if plugin is not None and not plugin.alive:
            log.error("device plugin loop ended unexpectedly; exiting")
            return 1
    return 0


def run(cfg: config.AgentConfig, stop: threading.Event) -> int:
    log_effective(log, "tke-eni-agent", cfg)
    # a CNI reply waiting for the GIL behind a background thread waits up to the
    # switch interval (5 ms by default): hand it over sooner
    sys.setswitchinterval(0.0005)
    if cfg.nice:
        try:  # before any thread starts: threads inherit it
            os.setpriority(os.PRIO_PROCESS, 0, cfg.nice)
        except OSError as exc:
            log.warning("cannot set niceness", extra={"nice": cfg.nice, "error": str(exc)})
    # built first: a bad TKE_ENI_DP_* setting fails the start before anything changes
    plugin = devplugin.embedded() if cfg.device_plugin else None
    metrics = Metrics()
    source, pods = build_sources(cfg)
    loaded = load_state(cfg)
    state = loaded.state
    settings = AgentSettings(
        eni_only=cfg.eni_only,
        cooldown=cfg.cooldown,
        static_ip_wait=cfg.static_ip_wait,
        refill_wait=cfg.refill_wait,
        host_veth_prefix=cfg.host_veth_prefix,
        fault=cfg.fault,
    )
    net = NetOps(mtu=cfg.eni_mtu)
    agent = Agent(
        settings,
        source=source,
        pods=pods,
        netops=net,
        state=state,
        checkpoint_path=cfg.checkpoint_path,
        metrics=metrics,
    )
    start_recovery(cfg, agent, loaded)
    reporter = Reporter(agent, cfg.report_interval)
    agent.on_change = reporter.poke
    reconciler = Reconciler(agent, cfg.reconcile_interval)
    source.start()
    capacity_feed = start_capacity_feed(cfg, agent, reporter)
    reconciler.run_once()
    agent.checkpoint.flush()
    if cfg.install_cni:
        install_cni(cfg)
    server = CniSocketServer(
        cfg.socket,
        agent,
        read_timeout=cfg.socket_read_timeout,
        max_connections=cfg.socket_max_connections,
    )
    agent.ready.set()
    health = start_health(cfg, agent, reconciler, metrics)
    if plugin is not None:
        plugin.start()
    server.start()
    reporter.start()
    reporter.poke()
    reconciler.start()
    log.info("ready", extra={"socket": cfg.socket, "health": cfg.health_address})
    rc = wait_stop(stop, plugin)
    log.info("stopping")
    agent.ready.clear()
    server.stop()
    reconciler.stop()
    reporter.stop()
    agent.checkpoint.flush()
    for feed in capacity_feed:
        feed.stop()
    source.stop()
    if health:
        health.stop()
    if plugin is not None:
        plugin.stop()
    net.close()
    log.info("stopped")
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    cfg = config.parse(argv)
    logs.setup(cfg.log_level, cfg.log_format, quiet=("pyroute2",))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run(cfg, stop)
    except (
        install.InstallError,
        checkpoint.CheckpointError,
        devplugin.DevicePluginError,
        OSError,
    ) as exc:
        log.error("fatal", extra={"error": str(exc)})
        return 1


if __name__ == "__main__":
    sys.exit(main())
