"""One real Kubernetes node on this machine: netns + containerd + kubelet (+ a forward
to the control plane), with its own dirs and cgroup root; ``stop()`` removes everything.

    node = Node("node-a", "ap-guangzhou-3", control_plane, workdir).start()
    node.wait_ready()
    ...
    node.stop()
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from localnode import cgroups, cniconf, kubeproxy, mntns, netns
from localnode.containerd import Containerd, ContainerdPaths
from localnode.cri import CriClient
from localnode.images import build_images
from localnode.kubeapi import api_request, kubeconfig_ca
from localnode.kubelet import KubeletPaths, KubeletSettings, make_daemon
from localnode.mounts import unmount_all
from localnode.proc import Daemon, ProcessError, kill_and_wait, pids_with_arg, run

log = logging.getLogger("localnode")

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
KUBELET_SETUP = "run hack/setup.sh (step: k8s build)"
REGISTRY_PORT = 5000
KUBELET_DEVICE_PLUGIN_DIR = Path("/var/lib/kubelet/device-plugins")
#: where containerd mounts pod netns when the node has its own /run/netns (host_paths)
NETNS_HOST_PATH = "/run/netns"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
DEFAULT_CACHE = Path(os.environ.get("TKE_NODE_CACHE", "/var/cache/tke-vpc-cni/localnode"))


class ControlPlaneAccess(Protocol):
    """What a node needs from the control plane (localcluster.ControlPlane has both)."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def server(self) -> str: ...


class NodeError(RuntimeError):
    """The node could not start or become Ready; the message says which part and why."""


@dataclass
class NodeTimings:
    containerd: float = 0.0
    images: float = 0.0
    kubelet_to_ready: float = 0.0
    total: float = 0.0


def region_of(zone: str) -> str:
    """ap-guangzhou-3 -> ap-guangzhou."""
    head, _, tail = zone.rpartition("-")
    return head if tail.isdigit() else zone


def kubelet_binary() -> Path:
    explicit = os.environ.get("TKE_NODE_KUBELET")
    if explicit:
        return Path(explicit)
    from localcluster.binaries import bin_dir

    return bin_dir() / "kubelet"


@dataclass
class Node:
    name: str
    zone: str
    control_plane: ControlPlaneAccess | None
    workdir: Path
    cni_conf: Mapping[str, Any] | None = None  # a conflist; None: ptp + host-local
    external_cni: bool = False  # True: write no conflist (the node agent installs its own)
    node_ip: str = ""  # e.g. "10.20.0.11/24" on the fabric; "" = no fabric link
    fabric: str = "tke-fabric"
    pod_subnet: str = "10.244.0.0/24"  # for the default ptp conflist
    provider_id: str = ""  # qcloud:///<zone-id>/<instance-id>
    labels: Mapping[str, str] = field(default_factory=dict)
    cgroup_root: str = ""  # default /tke-<name>
    netns_name: str = ""  # default tke-<name>
    with_kubelet: bool = True
    extra_forwards: Sequence[tuple[int, int]] = ()  # (port in node netns, host loopback port)
    kubelet_args: Sequence[str] = ()
    status_update_frequency: str = "10s"
    image_cache: Path = DEFAULT_CACHE
    with_registry: bool = True
    untaint_when_ready: bool = True
    delete_node_on_stop: bool = True  # tests: a stopped node leaves no stale Ready Node
    #: the node subnet's gateway on the fabric: the node's default route (the VPC router)
    gateway: str = ""
    #: host paths this node gets a private directory for (in its mount namespace), as
    #: hostPath volumes of a DaemonSet need: e.g. /opt/cni/bin, /etc/cni/net.d, /run/netns.
    #: With /run/netns, containerd mounts pod netns there (what a hostPath of it with
    #: mountPropagation HostToContainer expects) instead of under its state dir.
    host_paths: Sequence[str] = ()
    #: run kube-proxy (nftables, in the node's namespaces) beside the kubelet
    kube_proxy: bool = False

    containerd: Containerd | None = field(default=None, init=False)
    kubelet: Daemon | None = field(default=None, init=False)
    proxy: Daemon | None = field(default=None, init=False)
    forwarder: Daemon | None = field(default=None, init=False)
    registry: Daemon | None = field(default=None, init=False)
    extras: list[Daemon] = field(default_factory=list, init=False)
    timings: NodeTimings = field(default_factory=NodeTimings, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.cgroup_root = self.cgroup_root or f"/tke-{self.name}"
        self.netns_name = self.netns_name or f"tke-{self.name}"

    # ---- paths --------------------------------------------------------------
    @property
    def netns_path(self) -> str:
        return str(netns.netns_path(self.netns_name))

    @property
    def mntns_path(self) -> str:
        return str(mntns.path_of(self.netns_name))

    @property
    def cni_bin_dir(self) -> Path:
        return self.host_dir("/opt/cni/bin") if "/opt/cni/bin" in self.host_paths \
            else self.workdir / "cni" / "bin"

    @property
    def cni_conf_dir(self) -> Path:
        return self.host_dir("/etc/cni/net.d") if "/etc/cni/net.d" in self.host_paths \
            else self.workdir / "cni" / "net.d"

    def host_dir(self, host_path: str) -> Path:
        """The node's own directory behind ``host_path`` (one of ``host_paths``), as seen
        from outside the node's mount namespace."""
        return self.workdir / "host" / host_path.strip("/").replace("/", "_")

    @property
    def pod_netns_on_host_path(self) -> bool:
        return NETNS_HOST_PATH in self.host_paths

    @property
    def containerd_paths(self) -> ContainerdPaths:
        return ContainerdPaths(self.workdir / "containerd")

    @property
    def kubelet_paths(self) -> KubeletPaths:
        return KubeletPaths(self.workdir)

    @property
    def device_plugin_dir(self) -> Path:
        return self.kubelet_paths.device_plugin_dir

    @property
    def runtime_endpoint(self) -> str:
        return "unix://" + str(self.containerd_paths.socket)

    @property
    def ip(self) -> str:
        return self.node_ip.split("/")[0]

    def node_labels(self) -> dict[str, str]:
        return {ZONE_LABEL: self.zone, REGION_LABEL: region_of(self.zone),
                "failure-domain.beta.kubernetes.io/zone": self.zone, **self.labels}

    # ---- life cycle ---------------------------------------------------------
    def start(self, ready_timeout: float = 120.0) -> Node:
        """Start everything; with a kubelet, wait until the Node is Ready."""
        t0 = time.monotonic()
        self.start_runtime()
        if self.with_kubelet:
            self.start_kubelet(ready_timeout)
        self.timings.total = time.monotonic() - t0
        log.info("node %s up in %.1fs (%s)", self.name, self.timings.total, self.timings)
        return self

    def start_runtime(self) -> Node:
        """Namespaces, cgroup root, CNI dirs, registry, containerd and the images (no kubelet:
        start node daemons such as the agent now, then ``start_kubelet``)."""
        try:
            self._start_runtime()
        except BaseException:
            self.stop()
            raise
        return self

    def start_kubelet(self, ready_timeout: float = 120.0) -> Node:
        """The kubelet, then wait for Ready (the runtime must report its network ready,
        i.e. a CNI conflist must exist)."""
        try:
            self._start_kubelet()
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def sweep_stale(self) -> None:
        """Remove what a killed earlier run of a node of this name left (its processes,
        cgroups, mount and network namespaces): the names are ours, the run is gone."""
        if netns.exists(self.netns_name):
            log.warning("node %s: removing a stale netns %s and its processes", self.name,
                        self.netns_name)
            kill_and_wait(netns.pids_in(self.netns_name))
        cgroups.destroy(self.cgroup_root)
        mntns.delete(self.netns_name)
        netns.delete(self.netns_name)

    def _start_runtime(self) -> None:
        self.sweep_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        netns.create(self.netns_name)
        if self.node_ip:
            netns.ensure_fabric(self.fabric)
            netns.attach(self.netns_name, self.fabric, port=f"p-{self.name}"[:15],
                         address_cidr=self.node_ip, gateway=self.gateway)
        cgroups.create(self.cgroup_root)
        # the kubelet's device-plugin dir is fixed: give this node its own, in its own mntns
        mntns.create(self.netns_name, [(self.device_plugin_dir, KUBELET_DEVICE_PLUGIN_DIR),
                                       *((self.host_dir(p), Path(p)) for p in self.host_paths)],
                     shared=[Path(NETNS_HOST_PATH)] if self.pod_netns_on_host_path else [])
        cniconf.populate_bin_dir(self.cni_bin_dir)
        if not self.external_cni:
            conflist = self.cni_conf or cniconf.ptp_conflist(
                "localnode-ptp", self.pod_subnet, self.workdir / "cni" / "ipam")
            cniconf.write_conflist(self.cni_conf_dir, conflist)
        else:
            self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        if self.control_plane is not None:
            self._start_forwarder(self.control_plane)
        t = time.monotonic()
        images = build_images(self.image_cache)
        mirror = self._start_registry(images.archive) if self.with_registry else ""
        t_ctd = time.monotonic()
        # the CNI dirs as seen inside the node (containerd passes CNI_PATH on to plugins,
        # and a plugin in a container with those hostPaths sees them there)
        in_node = {p: Path(p) for p in ("/opt/cni/bin", "/etc/cni/net.d") if p in self.host_paths}
        self.containerd = Containerd(self.containerd_paths,
                                     in_node.get("/opt/cni/bin", self.cni_bin_dir),
                                     in_node.get("/etc/cni/net.d", self.cni_conf_dir),
                                     netns=self.netns_path,
                                     mntns=self.mntns_path,
                                     registry_mirror=mirror,
                                     netns_under_state_dir=not self.pod_netns_on_host_path)
        self.containerd.start()
        self.timings.containerd = time.monotonic() - t_ctd
        self.containerd.import_images(images.archive)
        self.timings.images = time.monotonic() - t - self.timings.containerd

    def _start_forwarder(self, cp: ControlPlaneAccess) -> None:
        """The node reaches the apiserver (and ``extra_forwards``) on its own loopback."""
        port = urlsplit(cp.server).port or 443
        forwards = [f"127.0.0.1:{port}=127.0.0.1:{port}",
                    *(f"127.0.0.1:{a}=127.0.0.1:{b}" for a, b in self.extra_forwards)]
        self.forwarder = Daemon(
            f"portforward[{self.name}]",
            [sys.executable, "-m", "localnode.portforward", "--netns", self.netns_path,
             *(arg for f in forwards for arg in ("--forward", f))],
            log=self.workdir / "portforward.log", env=_python_env())
        self.forwarder.start()

    def _start_registry(self, archive: Path) -> str:
        """The node-local read-only registry that containerd's mirrors point at."""
        self.registry = Daemon(
            f"registry[{self.name}]",
            [sys.executable, "-m", "localnode.registry", "--archive", str(archive),
             "--listen", f"127.0.0.1:{REGISTRY_PORT}"],
            log=self.workdir / "registry.log", netns=self.netns_path,
            mntns=self.mntns_path, env=_python_env())
        self.registry.start()
        url = f"http://127.0.0.1:{REGISTRY_PORT}"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.registry.check_alive()
            with contextlib.suppress(ProcessError):
                run(["/bin/busybox", "wget", "-q", "-O", "/dev/null", url + "/v2/"],
                    netns=self.netns_path, timeout=5)
                return url
            time.sleep(0.1)
        raise NodeError(f"node {self.name}: registry did not answer on {url} (netns "
                        f"{self.netns_name}); log {self.registry.log}")

    def _start_kubelet(self) -> None:
        if self.control_plane is None:
            raise NodeError(f"node {self.name}: a kubelet needs a control plane")
        binary = kubelet_binary()
        if not os.access(binary, os.X_OK):
            raise NodeError(f"kubelet binary {binary} not found: {KUBELET_SETUP}")
        settings = KubeletSettings(
            node_name=self.name, kubeconfig=self.control_plane.kubeconfig,
            runtime_endpoint=self.runtime_endpoint, cgroup_root=self.cgroup_root,
            node_ip=self.ip, provider_id=self.provider_id, labels=self.node_labels(),
            client_ca=kubeconfig_ca(self.control_plane.kubeconfig),
            extra_args=self.kubelet_args, status_update_frequency=self.status_update_frequency)
        self.kubelet = make_daemon(binary, settings, self.kubelet_paths, self.netns_path,
                                   self.mntns_path)
        self.kubelet.start()
        if self.kube_proxy and self.proxy is None:
            self.proxy = kubeproxy.make_daemon(self.name, self.workdir / "kube-proxy",
                                               self.control_plane.kubeconfig, self.ip,
                                               netns=self.netns_path, mntns=self.mntns_path)
            self.proxy.start()

    def restart_kubelet(self, ready_timeout: float = 120.0) -> float:
        """Stop the kubelet (TERM, wait), start it again on the same root dir, wait for Ready.
        Pods keep running in containerd; device plugins must re-register (the kubelet
        removes their sockets). Returns seconds from restart to Ready."""
        if self.kubelet is None:
            raise NodeError(f"node {self.name}: no kubelet to restart")
        self.kubelet.stop()
        self.kubelet.start()
        return self.wait_ready(ready_timeout)

    def run_daemon(self, name: str, argv: Sequence[str],
                   env: Mapping[str, str] | None = None) -> Daemon:
        """Start a node-local daemon (device plugin, agent...) in the node's netns, the way a
        hostNetwork DaemonSet pod would run; it is stopped first by ``stop()``."""
        daemon = Daemon(f"{name}[{self.name}]", argv, log=self.workdir / f"{name}.log",
                        netns=self.netns_path, mntns=self.mntns_path,
                        env={**_python_env(), **(env or {})})
        daemon.start()
        self.extras.append(daemon)
        return daemon

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait for the Node's Ready condition; return the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = "not registered"
        while time.monotonic() < deadline:
            if self.kubelet is not None:
                self.kubelet.check_alive()
            node = self.api_get(f"/api/v1/nodes/{self.name}")
            if node is not None:
                conds = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
                ready = conds.get("Ready", {})
                if ready.get("status") == "True":
                    self.timings.kubelet_to_ready = time.monotonic() - t0
                    if self.untaint_when_ready:
                        self._remove_not_ready_taint(node)
                    return self.timings.kubelet_to_ready
                last = f"Ready={ready.get('status')} ({ready.get('message', '')})"
            time.sleep(0.5)
        tail = self.kubelet.log_tail(40) if self.kubelet else ""
        raise NodeError(f"node {self.name} not Ready within {timeout:.0f}s: {last}; "
                        f"kubelet log {self.kubelet_paths.log}:\n{tail}")

    def _remove_not_ready_taint(self, node: Mapping[str, Any]) -> None:
        """Stand in for kube-controller-manager's node-lifecycle controller (the local control
        plane runs none): the kubelet registers with ``node.kubernetes.io/not-ready`` and
        only that controller removes it once the node is Ready."""
        taints = node.get("spec", {}).get("taints") or []
        keep = [t for t in taints if t.get("key") != NOT_READY_TAINT]
        if len(keep) == len(taints) or self.control_plane is None:
            return
        api_request(self.control_plane.kubeconfig, self.control_plane.server,
                    f"/api/v1/nodes/{self.name}", "PATCH",
                    {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                     "spec": {"taints": keep or None}},
                    content_type="application/merge-patch+json")

    def api_get(self, path: str) -> dict[str, Any] | None:
        """GET from the apiserver with the control plane's kubeconfig (None on 404)."""
        if self.control_plane is None:
            return None
        return api_request(self.control_plane.kubeconfig, self.control_plane.server, path)

    def cri(self) -> CriClient:
        return CriClient(self.containerd_paths.socket)

    def stop(self) -> list[str]:
        """Stop and remove everything this node made; return what could not be cleaned."""
        problems: list[str] = []

        def step(what: str, fn: Callable[[], object]) -> None:
            try:
                left = fn()
                if isinstance(left, list) and left:
                    problems.extend(f"{what}: {x}" for x in left)
            except Exception as exc:  # noqa: BLE001 - clean-up goes on and reports all
                problems.append(f"{what}: {exc}")

        if self.kubelet is not None:
            step("stop kubelet", self.kubelet.stop)
            self.kubelet = None
            if self.delete_node_on_stop:
                step("delete Node object", self._delete_node_object)
        sock = self.containerd_paths.socket
        # while the node agent still runs, so every CNI DEL reaches it
        if self.containerd is not None and self.containerd.daemon is not None \
                and self.containerd.daemon.alive():
            step("remove sandboxes", self._remove_sandboxes)
        for daemon in reversed(self.extras):
            step(f"stop {daemon.name}", daemon.stop)
        self.extras.clear()
        if self.containerd is not None:
            step("stop containerd", self.containerd.stop)
            self.containerd = None
        # shims outlive containerd (they are in their own session): find them by our socket
        step("kill shims", lambda: kill_and_wait(pids_with_arg(str(sock))))
        step("cgroups", lambda: cgroups.destroy(self.cgroup_root))
        step("unmount", lambda: unmount_all(self.workdir))
        for name in ("proxy", "forwarder", "registry"):
            daemon = getattr(self, name)
            if daemon is not None:
                step(f"stop {daemon.name}", daemon.stop)
                setattr(self, name, None)
        step("mntns", lambda: mntns.delete(self.netns_name))
        step("netns", lambda: netns.delete(self.netns_name))
        if problems:
            log.warning("node %s clean-up problems: %s", self.name, problems)
        return problems

    def _delete_node_object(self) -> None:
        if self.control_plane is not None:
            with contextlib.suppress(OSError):  # control plane already gone: nothing to delete
                api_request(self.control_plane.kubeconfig, self.control_plane.server,
                            f"/api/v1/nodes/{self.name}", "DELETE")

    def _remove_sandboxes(self) -> list[str]:
        with self.cri() as c:
            return c.remove_all()

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _python_env() -> dict[str, str]:
    """Our helper modules run as ``python -m localnode.x`` from the project root."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{root}:{path}" if path else root}
