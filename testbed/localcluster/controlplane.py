"""A local control plane: etcd + kube-apiserver (+ kube-scheduler, + kwok).

    cp = ControlPlane(workdir, with_scheduler=True, scheduler_config=cfg, kwok_nodes=3)
    cp.start()          # ready (or raises with the failing component's log tail)
    api = cp.api_client()
    cp.stop()           # every process we started is gone (by pid and process group)

Everything listens on 127.0.0.1 on free ports. ``workdir`` holds the PKI,
the admin kubeconfig, etcd's data and one log file per program.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from localcluster import components
from localcluster.binaries import K8sBinaries, k8s_binaries
from localcluster.certs import ClusterPKI, make_pki
from localcluster.egressproxy import egress_selector_config
from localcluster.fakenodes import KWOK_SELECTOR, FakeNode, numbered_nodes
from localcluster.kubeconfig import write_kubeconfig
from localcluster.nsrun import call_in_netns
from localcluster.ports import free_ports
from localcluster.process import ManagedProcess, tail
from localcluster.readiness import NotReadyError, TLSClient, http_ok, wait_ready
from localcluster.scheduler_config import SchedulerConfig, write_scheduler_config

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

log = logging.getLogger(__name__)


class ControlPlaneError(RuntimeError):
    """Starting the control plane failed; the message names the component and its log."""


@dataclass
class Timings:
    """Seconds spent per start phase (for the docs and bench figures)."""

    pki: float = 0.0
    etcd: float = 0.0
    apiserver: float = 0.0
    scheduler: float = 0.0
    controller_manager: float = 0.0
    egress: float = 0.0
    kwok: float = 0.0
    total: float = 0.0


@dataclass
class ControlPlane:
    """One local cluster. ``start()`` then ``stop()``; also a context manager."""

    workdir: Path
    with_scheduler: bool = False
    scheduler_config: SchedulerConfig | Mapping[str, Any] | None = None
    kwok_nodes: int | Sequence[FakeNode] = 0
    with_kwok: bool | None = None
    apiserver_args: Sequence[str] = ()
    scheduler_args: Sequence[str] = ()
    with_controller_manager: bool = False  # Deployments, StatefulSets, ReplicaSets, GC
    controller_manager_args: Sequence[str] = ()
    ready_timeout: float = 60.0
    binaries: K8sBinaries | None = None
    #: set when real pods use in-cluster config (components.ClusterNetwork)
    network: components.ClusterNetwork | None = None
    #: the cluster network's namespace (a file under /run/netns): kube-scheduler runs in
    #: it (it reaches the extender's Service there) and the apiserver's ``cluster``
    #: egress goes through a proxy started in it (localcluster.egressproxy)
    cluster_netns: str = ""
    #: called once the apiserver is ready, before the scheduler starts (e.g. to give the
    #: cluster netns its route to the apiserver)
    on_apiserver_ready: Callable[[ControlPlane], None] | None = None
    #: node IPAM: every Node gets a /24 of this range (spec.podCIDR); "" = off
    pod_cidr: str = ""

    processes: dict[str, ManagedProcess] = field(default_factory=dict, init=False)
    pki: ClusterPKI | None = field(default=None, init=False)
    ports: dict[str, int] = field(default_factory=dict, init=False)
    timings: Timings = field(default_factory=Timings, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        if self.with_kwok is None:
            self.with_kwok = bool(self.kwok_nodes)

    # ---- paths -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def egress_socket(self) -> Path:
        """The apiserver's egress proxy (with ``cluster_netns``)."""
        return self.workdir / "egress.sock"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    # ---- life cycle --------------------------------------------------------
    def start(self) -> ControlPlane:
        """Start every component and wait for readiness; on failure stop what started."""
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings.total = time.monotonic() - t0
        log.info("control plane ready at %s in %.1fs (kubeconfig %s)",
                 self.server, self.timings.total, self.kubeconfig)
        return self

    def _start(self) -> None:
        bins = self.binaries or k8s_binaries()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        t = time.monotonic()
        net = self.network
        self.pki = pki = (make_pki(self.workdir / "pki", net.kubernetes_service_ip,
                                   (net.advertise_address,))
                          if net else make_pki(self.workdir / "pki"))
        self.timings.pki = time.monotonic() - t
        names = ["etcd", "etcd-peer", "apiserver", "scheduler", "kwok", "controller-manager"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        write_kubeconfig(self.kubeconfig, self.server, pki.ca_cert, pki.admin_cert, pki.admin_key)

        etcd = self._spawn("etcd", components.etcd_argv(
            bins.etcd, self.workdir / "etcd-data", self.ports["etcd"], self.ports["etcd-peer"]))
        self.timings.etcd = self._wait(etcd, "etcd /health", lambda: http_ok(
            f"http://127.0.0.1:{self.ports['etcd']}/health", expect='"health":"true"'))

        extra = list(self.apiserver_args)
        if self.cluster_netns:
            self._spawn("egress-proxy", ["nsenter", f"--net={self.cluster_netns}",
                                         sys.executable, "-m", "localcluster.egressproxy",
                                         "--socket", str(self.egress_socket)])
            self.timings.egress = self._wait(
                self.processes["egress-proxy"], "egress proxy socket",
                lambda: (self.egress_socket.exists(), "no socket yet"))
            config = self.workdir / "egress-selector.yaml"
            config.write_text(egress_selector_config(str(self.egress_socket)))
            extra.append(f"--egress-selector-config-file={config}")
        apiserver = self._spawn("kube-apiserver", components.apiserver_argv(
            bins.kube_apiserver, pki, self.ports["etcd"], self.ports["apiserver"],
            extra, network=self.network))
        admin = TLSClient(pki.ca_cert, pki.admin_cert, pki.admin_key)
        self.timings.apiserver = self._wait(apiserver, "kube-apiserver /readyz", lambda: http_ok(
            f"{self.server}/readyz", admin, expect="ok"))

        if self.on_apiserver_ready is not None:
            self.on_apiserver_ready(self)
        if self.with_scheduler:
            config = write_scheduler_config(self.workdir / "kube-scheduler.yaml",
                                            self.scheduler_config, self.kubeconfig)
            argv = components.scheduler_argv(
                bins.kube_scheduler, config, self.kubeconfig, self.ports["scheduler"],
                self.scheduler_args)
            url = f"https://127.0.0.1:{self.ports['scheduler']}/healthz"
            if self.cluster_netns:
                argv = ["nsenter", f"--net={self.cluster_netns}", *argv]
            netns = self.cluster_netns

            def healthy() -> tuple[bool, str]:
                def check() -> tuple[bool, str]:
                    return http_ok(url, TLSClient(), expect="ok")
                return call_in_netns(netns, check) if netns else check()
            sched = self._spawn("kube-scheduler", argv)
            self.timings.scheduler = self._wait(sched, "kube-scheduler /healthz", healthy)

        if self.with_controller_manager:
            kcm = self._spawn("kube-controller-manager", components.controller_manager_argv(
                bins.kube_controller_manager, pki, self.kubeconfig,
                self.ports["controller-manager"], self.controller_manager_args,
                pod_cidr=self.pod_cidr,
                service_cidr=self.network.service_cidr if self.network
                else components.SERVICE_CIDR))
            self.timings.controller_manager = self._wait(
                kcm, "kube-controller-manager /healthz", lambda: http_ok(
                    f"https://127.0.0.1:{self.ports['controller-manager']}/healthz",
                    TLSClient(), expect="ok"))

        if self.with_kwok:
            home = self.workdir / "kwok-home"  # keeps ~/.kwok/kwok.yaml of the user out
            home.mkdir(exist_ok=True)
            kwok = self._spawn("kwok", components.kwok_argv(
                bins.kwok, self.kubeconfig, self.ports["kwok"], KWOK_SELECTOR),
                env={**os.environ, "HOME": str(home)})
            self.timings.kwok = self._wait(kwok, "kwok /healthz", lambda: http_ok(
                f"http://127.0.0.1:{self.ports['kwok']}/healthz"))
            nodes = (numbered_nodes(self.kwok_nodes) if isinstance(self.kwok_nodes, int)
                     else list(self.kwok_nodes))
            if nodes:
                self.add_nodes(nodes)
        self._write_state()

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str] | None = None
               ) -> ManagedProcess:
        try:
            proc = ManagedProcess.start(name, argv, self.log_path(name), env=env, cwd=self.workdir)
        except RuntimeError as exc:
            raise ControlPlaneError(
                f"{exc}: run hack/setup.sh (step: k8s build) to rebuild the binaries") from exc
        self.processes[name] = proc
        return proc

    def _wait(self, proc: ManagedProcess, what: str, check: Any) -> float:
        try:
            return wait_ready(proc, check, self.ready_timeout, what)
        except NotReadyError as exc:
            raise ControlPlaneError(f"control plane in {self.workdir}: {exc}") from exc

    def stop(self, grace: float = 10.0) -> None:
        """Stop every process (reverse start order); idempotent; never raises for a dead one."""
        for name in reversed(list(self.processes)):
            proc = self.processes[name]
            try:
                proc.stop(grace)
            except Exception:  # a teardown must reach every process
                log.exception("stopping %s pid=%d failed", name, proc.pid)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- helpers for tests and tools --------------------------------------
    def api_client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` for the admin user (close it when done)."""
        from kubernetes import config

        api: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig))
        return api

    def add_nodes(self, nodes: Sequence[FakeNode]) -> None:
        """Create kwok-managed Nodes (kwok must be running to keep them Ready)."""
        from kubernetes import client

        with contextlib.closing(self.api_client()) as api:
            core = client.CoreV1Api(api)
            for node in nodes:
                core.create_node(cast(Any, node.manifest()))

    def logs(self, lines: int = 40) -> str:
        """The tail of every component log, for failure reports."""
        parts = []
        for name, proc in self.processes.items():
            parts.append(f"----- {name} (pid {proc.pid}) {proc.log_path} -----\n"
                         f"{tail(proc.log_path, lines)}")
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "server": self.server,
            "ports": self.ports,
            "processes": {name: {"pid": p.pid, "start_ticks": p.start_ticks,
                                 "log": str(p.log_path), "argv0": p.argv[0]}
                          for name, p in self.processes.items()},
        }

    def _write_state(self) -> None:
        (self.workdir / "state.json").write_text(json.dumps(self.state(), indent=2) + "\n")


@contextlib.contextmanager
def running_control_plane(workdir: Path, **kwargs: Any) -> Iterator[ControlPlane]:
    """``with running_control_plane(dir, with_scheduler=True) as cp: ...``"""
    cp = ControlPlane(workdir, **kwargs)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()
