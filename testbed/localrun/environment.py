"""The whole environment, started and stopped as one (docs/local-run.md).

    env = Environment(workdir)
    env.start()        # image, emulator, VPC fabric, control plane (+ scheduler, KCM,
                       # kube-proxy), deploy/ through the local overlay, real nodes (kubelet,
                       # containerd, kube-proxy) running every component as a pod
    env.kube.pods()    # ...
    env.stop()         # everything gone: processes, netns, mounts, cgroups

Phase timings are in ``env.phases``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.components import ClusterNetwork
from localcluster.controlplane import ControlPlane
from localcluster.extender_pki import SERVICE_NAMES, ExtenderPKI, make_extender_pki
from localcluster.fakenodes import FakeNode
from localnode import kubeproxy, netns
from localnode.node import Node
from localnode.proc import Daemon
from localrun import image, manifests, overlay, workloads
from localrun.cloudnet import CLOUD_SERVICES_ADDRESS, CLOUD_SERVICES_PORT, CP_ADDRESS, CloudNetwork
from localrun.cloudspec import (
    NODE_SUBNETS,
    ZONE3,
    ZONE4,
    ZONE5,
    ZONE_IDS,
    CloudLayout,
    layout_from_configmap,
)
from localrun.kube import Kube, wait_for
from localrun.nodedaemons import (
    MIXED_AGENT_ARGS,
    MIXED_WEBHOOK_ARGS,
    POD_CIDR,
    NodeSpec,
    RealNode,
    agent_config_map,
)
from localrun.plumber import Plumber
from localrun.timings import Phases
from vpcsim.testing import RemoteEmulator, spawn_emulator

log = logging.getLogger("localrun")

ENI_IP = "tke.cloud.tencent.com/eni-ip"
IPAMD = "tke-eni-ipamd"
#: the local run's cluster id, set in ipamd's Deployment as an operator sets
#: deploy/knobs/ipamd-args.yaml (ipamd refuses deploy/'s placeholder cls-xxxxxxxx)
CLUSTER_ID = "cls-localrun"
EXTENDER = "tke-eni-ip-scheduler"
AGENT = "tke-eni-agent"
INSTANCE_LABEL = "tke.cloud.tencent.com/instance-id"
ZONE_LABEL = "topology.kubernetes.io/zone"


#: two real nodes in zone 3 (the StatefulSet moves between them), one in zone 4
DEFAULT_NODES = (NodeSpec("node-a", ZONE3), NodeSpec("node-b", ZONE3), NodeSpec("node-c", ZONE4))
#: a kwok node in zone 5, where no pod subnet is configured
NO_SUBNET_NODE = NodeSpec("kwok-gz5", ZONE5)


#: Services' ClusterIPs; the extender's is pinned (kube-scheduler reaches it by address)
SERVICE_CIDR = "10.96.0.0/16"
EXTENDER_CLUSTER_IP = "10.96.0.20"
EXTENDER_SERVER_NAME = "tke-eni-ip-scheduler.kube-system.svc"
#: the host paths deploy/'s DaemonSet mounts: each real node has its own (node.md)
NODE_HOST_PATHS = ("/opt/cni/bin", "/etc/cni/net.d", "/run/netns", "/run/tke-eni-agent",
                   "/var/lib/tke-eni-agent")


@dataclass
class Environment:
    workdir: Path
    nodes: Sequence[NodeSpec] = DEFAULT_NODES
    kwok_nodes: int = 2  # plain kwok nodes for scale (no eni-ip), plus NO_SUBNET_NODE
    prefix: str = "tkl"  # netns / cgroup / fabric names: tkl-node-a, tkl-fabric, tkl-cp
    #: ipamd's tuning through the overlay (the test bed's shorter loops)
    ipamd_extra_env: dict[str, str] = field(default_factory=dict)
    #: agent flags (``--name=value``) set through the overlay
    agent_extra_args: Sequence[str] = ()
    progress: Callable[[str], None] = print
    image: str = image.IMAGE

    emulator: RemoteEmulator | None = field(default=None, init=False)
    cp: ControlPlane | None = field(default=None, init=False)
    objs: list[dict[str, Any]] = field(default_factory=list, init=False)
    layout: CloudLayout | None = field(default=None, init=False)
    real: dict[str, RealNode] = field(default_factory=dict, init=False)
    extender_pki: ExtenderPKI | None = field(default=None, init=False)
    plumber: Plumber | None = field(default=None, init=False)
    net: CloudNetwork | None = field(default=None, init=False)
    cp_daemons: list[Daemon] = field(default_factory=list, init=False)
    phases: Phases = field(init=False)
    stop_timings: list[tuple[str, float]] = field(default_factory=list, init=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.phases = Phases(progress=self.progress)

    # ---- names ----------------------------------------------------------------------------
    @property
    def fabric(self) -> str:
        return CloudNetwork(self.prefix, ()).fabric

    @property
    def cp_netns(self) -> str:
        return CloudNetwork(self.prefix, ()).cp_netns

    @property
    def kube(self) -> Kube:
        assert self.cp is not None, "environment not started"
        return Kube(self.cp.kubeconfig, self.cp.server)

    @property
    def overlay_dir(self) -> Path:
        return self.workdir / "overlay"

    def ipamd_workload(self) -> dict[str, Any]:
        return manifests.find(self.objs, "Deployment", IPAMD)

    # ---- life cycle -----------------------------------------------------------------------
    def start(self) -> Environment:
        try:
            self._start()
        except BaseException:
            self.progress("start failed: stopping what started")
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.phases.phase("component image (hack/image/build.sh, cached layers)"):
            image.build(self.workdir / "image-build.log")
        # mutual TLS between kube-scheduler and the extender (made before the scheduler)
        self.extender_pki = make_extender_pki(self.workdir / "extender-pki", SERVICE_NAMES,
                                              ("127.0.0.1", EXTENDER_CLUSTER_IP))
        with self.phases.phase("deploy/ built (kustomize)"):
            base = manifests.kustomize_build()
            cm = manifests.find(base, "ConfigMap", "tke-eni-ipamd")
            self.layout = layout_from_configmap(dict(cm["data"]))
        spec = self.layout.spec()
        node_cidrs = [s["cidr"] for s in spec["vpcs"][0]["subnets"]
                      if s["id"] in NODE_SUBNETS.values()]
        with self.phases.phase("VPC fabric: router, control plane network, cloud services"):
            self.net = CloudNetwork(self.prefix, node_cidrs)
            self.net.up()
        with self.phases.phase("emulated VPC (tke-vpcsim) + instances"):
            self.emulator = self._stack.enter_context(spawn_emulator(
                self.workdir / "vpcsim", spec, extra_args=[
                    "--vpc-listen",
                    f"{self.net.fabric_path}={CLOUD_SERVICES_ADDRESS}:{CLOUD_SERVICES_PORT}"]))
            instances = {s.name: self.emulator.add_instance(
                NODE_SUBNETS[s.zone], s.instance_type, name=s.name)
                for s in (*self.nodes, NO_SUBNET_NODE)}
            by_id = {i["instance_id"]: i for i in self.emulator.state()["instances"]}
        with self.phases.phase("control plane (etcd, apiserver, scheduler, KCM, kube-proxy, "
                               "kwok)"):
            self.cp = self._control_plane(instances)
            self.cp.start()
        with self.phases.phase("deploy/ applied through the local overlay (kubectl apply -k)"):
            self.apply_deploy()
        self.plumber = Plumber(self.fabric, self.emulator.state)
        self.plumber.start()
        for node_spec in self.nodes:
            with self.phases.phase(f"real node {node_spec.name} ({node_spec.zone}): containerd, "
                                   "kubelet, kube-proxy, the agent pod -> Ready"):
                self._start_node(node_spec, by_id[instances[node_spec.name]])
        with self.phases.phase("components Running from deploy/ (DaemonSet, Deployments, Job)"):
            workloads.wait_all(self.kube, detail=self.logs)
        with self.phases.phase("ENIs attached + plugged, eni-ip advertised on every node"):
            for rn in self.real.values():
                self.wait_node_networking(rn.name)
        self.write_state()

    def _control_plane(self, instances: dict[str, str]) -> ControlPlane:
        assert self.net is not None and self.extender_pki is not None
        fake = [FakeNode(NO_SUBNET_NODE.name, allocatable={ENI_IP: "27"}, labels={
            ZONE_LABEL: ZONE5, INSTANCE_LABEL: instances[NO_SUBNET_NODE.name],
            "node.kubernetes.io/instance-type": NO_SUBNET_NODE.instance_type})]
        fake += [FakeNode(f"kwok-{i}", labels={ZONE_LABEL: (ZONE3, ZONE4)[i % 2]})
                 for i in range(self.kwok_nodes)]
        tls = {**self.extender_pki.tls_config(), "serverName": EXTENDER_SERVER_NAME}
        return ControlPlane(
            self.workdir / "cluster", with_scheduler=True,
            scheduler_config=manifests.scheduler_config(
                f"https://{EXTENDER_CLUSTER_IP}:8443", tls),
            with_controller_manager=True, kwok_nodes=fake,
            network=ClusterNetwork(CP_ADDRESS, SERVICE_CIDR), pod_cidr=POD_CIDR,
            cluster_netns=self.net.cp_netns_path, on_apiserver_ready=self._cluster_side)

    def _cluster_side(self, cp: ControlPlane) -> None:
        """The apiserver's VPC endpoint and the control plane's kube-proxy (in its own
        network namespace on the fabric), before kube-scheduler starts there."""
        assert self.net is not None
        endpoint = self.net.apiserver_endpoint(cp.ports["apiserver"], str(cp.logs_dir))
        endpoint.start()
        self.cp_daemons.append(endpoint)
        proxy = kubeproxy.make_daemon("control-plane", cp.workdir / "kube-proxy",
                                      cp.kubeconfig, CP_ADDRESS,
                                      netns=self.net.cp_netns_path)
        proxy.start()
        self.cp_daemons.append(proxy)

    def overlay_settings(self) -> overlay.OverlaySettings:
        assert self.emulator is not None and self.extender_pki is not None
        pki = self.extender_pki
        cloud = f"{CLOUD_SERVICES_ADDRESS}:{CLOUD_SERVICES_PORT}"
        return overlay.OverlaySettings(
            image=self.image, cluster_id=CLUSTER_ID, cloud_endpoint=cloud,
            metadata_url=f"http://{CLOUD_SERVICES_ADDRESS}/latest/meta-data/",
            secret_id=self.emulator.secret_id, secret_key=self.emulator.secret_key,
            extender_cluster_ip=EXTENDER_CLUSTER_IP,
            extender_tls={"tls.crt": pki.server_cert, "tls.key": pki.server_key,
                          "client-ca.crt": pki.client_ca},
            ipamd_env={"TKE_IPAMD_SUBNET_REFRESH_INTERVAL": "5s",
                       # leaks from a kill -9 are deleted within a scenario (default: 10m)
                       "TKE_IPAMD_LEAKED_ENI_MIN_AGE": "15s", **self.ipamd_extra_env},
            # the guide's mixed cluster ("Method 2"): pods without the annotation get the
            # default network; deploy/ ships a VPC-CNI-only cluster ("Method 1")
            agent_args=(*MIXED_AGENT_ARGS, *self.agent_extra_args),
            webhook_args=MIXED_WEBHOOK_ARGS, extra_resources=[agent_config_map()])

    def apply_deploy(self) -> None:
        """Write the overlay and apply it as an operator would: ``kubectl apply -k``."""
        base = manifests.kustomize_build()
        overlay.write(self.overlay_dir, base, self.overlay_settings())
        self.objs = manifests.kustomize_build(self.overlay_dir)
        self.kubectl("apply", "--server-side", "--field-manager=tke-localrun", "-k",
                     str(self.overlay_dir))

    def kubectl_run(self, *args: str, timeout: float = 120.0, env: dict[str, str] | None = None,
                    stdin: str | None = None) -> tuple[int, str]:
        """The real kubectl with the admin kubeconfig: (exit code, stdout + stderr)."""
        import subprocess

        from localcluster.binaries import bin_dir
        assert self.cp is not None
        proc = subprocess.run([str(bin_dir() / "kubectl"), f"--kubeconfig={self.cp.kubeconfig}",
                               *args], capture_output=True, text=True, timeout=timeout,
                              input=stdin, env={**os.environ, **(env or {})}, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    def kubectl(self, *args: str, timeout: float = 120.0, check: bool = True,
                env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        """The real kubectl's output; AssertionError when it fails (``check``)."""
        code, out = self.kubectl_run(*args, timeout=timeout, env=env, stdin=stdin)
        if check and code != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({code}): {out}")
        return out

    # ---- real nodes ----------------------------------------------------------------------
    def _start_node(self, spec: NodeSpec, inst: dict[str, Any]) -> RealNode:
        assert self.emulator is not None and self.cp is not None and self.plumber is not None
        cidr = NODE_SUBNETS[spec.zone]
        gateway = next(s["cidr"] for s in self.layout.spec()["vpcs"][0]["subnets"]  # type: ignore[union-attr]
                       if s["id"] == cidr)
        from localrun.cloudnet import gateway_of
        node = Node(spec.name, spec.zone, self.cp, self.workdir / "nodes" / spec.name,
                    external_cni=True, node_ip=f"{inst['private_ip']}/24", fabric=self.fabric,
                    gateway=gateway_of(gateway), host_paths=NODE_HOST_PATHS, kube_proxy=True,
                    provider_id=f"qcloud:///{ZONE_IDS[spec.zone]}/{inst['instance_id']}",
                    netns_name=f"{self.prefix}-{spec.name}",
                    cgroup_root=f"/{self.prefix}-{spec.name}", status_update_frequency="1s",
                    kubelet_args=(f"--max-pods={spec.max_pods}",) if spec.max_pods else (),
                    labels={INSTANCE_LABEL: inst["instance_id"],
                            "node.kubernetes.io/instance-type": spec.instance_type})
        rn = RealNode(spec, inst["instance_id"], inst["private_ip"], node)
        self.real[spec.name] = rn
        node.start_runtime()
        self.plumber.add_node(rn.instance_id, node.netns_name)
        node.start_kubelet(ready_timeout=180.0)
        rn.pod_subnet = str(((self.kube.node(spec.name) or {}).get("spec") or {})
                            .get("podCIDR") or "")
        return rn

    def join_node(self, spec: NodeSpec) -> RealNode:
        """Join one more real node to the running environment, as a new cloud instance
        joins a cluster: the instance in the emulator, then the node's containerd,
        kubelet and kube-proxy -> Ready (deploy/'s DaemonSet brings the agent there).
        It stops with the rest (``stop``); ``localrun.joinnode`` times it."""
        assert self.emulator is not None, "environment not started"
        if spec.name in self.real:
            raise ValueError(f"a real node {spec.name} is already in the environment")
        iid = self.emulator.add_instance(NODE_SUBNETS[spec.zone], spec.instance_type,
                                         name=spec.name)
        inst = next(i for i in self.emulator.state()["instances"] if i["instance_id"] == iid)
        rn = self._start_node(spec, inst)
        self.write_state()
        return rn

    def wait_node_networking(self, name: str, timeout: float = 180.0) -> None:
        """An ENI of the node is Attached (VpcENI), plugged in its netns, and the node
        advertises eni-ip."""
        rn = self.real[name]
        kube = self.kube

        def attached() -> list[dict[str, Any]]:
            return [e for e in kube.custom("vpcenis", selector=f"tke.cloud.tencent.com/node={name}")
                    if (e.get("status") or {}).get("phase") == "Attached"]
        enis = wait_for(f"an Attached VpcENI on {name}", attached, timeout, detail=self.logs)
        macs = {str(e["status"].get("mac", "")).lower() for e in enis}

        def plugged() -> bool:
            links = json.loads(netns.ip(rn.node.netns_name, "-j", "link", "show"))
            return bool(macs & {str(lk.get("address", "")).lower() for lk in links})
        wait_for(f"the ENI link in {rn.node.netns_name}", plugged, timeout)

        def capacity() -> str | None:
            got = kube.node(name)
            value = ((got or {}).get("status") or {}).get("allocatable", {}).get(ENI_IP)
            return value if value not in (None, "0") else None
        wait_for(f"{ENI_IP} allocatable on {name}", capacity, timeout, detail=self.logs)

    # ---- our components (pods) -------------------------------------------------------------
    def component_pods(self, app: str) -> list[dict[str, Any]]:
        return workloads.pods_of(self.kube, app)

    def ipamd_leader(self) -> str:
        """The ipamd pod that holds the Lease ("" while none of the live pods does: a deleted
        pod's name stays the holder until its Lease expires)."""
        holder = workloads.ipamd_leader(self.kube)
        live = {p["metadata"]["name"] for p in self.component_pods(IPAMD)}
        return holder if holder in live else ""

    def pod_node(self, pod: dict[str, Any]) -> Node:
        return self.real[pod["spec"]["nodeName"]].node

    def kill_component(self, pod: dict[str, Any], container: str) -> Sequence[int]:
        """SIGKILL a component's container processes (a crash); the kubelet restarts it."""
        return workloads.kill_container(self.pod_node(pod), pod, container)

    def agent_pod(self, node: str) -> dict[str, Any]:
        pods = [p for p in self.component_pods(AGENT) if p["spec"].get("nodeName") == node]
        if not pods:
            raise LookupError(f"no {AGENT} pod on {node}")
        return pods[0]

    def restart_ipamd_from_deployment(self) -> dict[str, Any]:
        """After an edit of the Deployment: wait for its rollout, as ``kubectl rollout
        status`` does, and for a leader."""
        obj = workloads.wait_rolled_out(self.kube, "Deployment", IPAMD, detail=self.logs)
        wait_for("an ipamd leader", self.ipamd_leader, 60)
        return obj

    # ---- introspection ---------------------------------------------------------------------
    def logs(self, lines: int = 25) -> str:
        """The tail of every component container's log (``kubectl logs``: apiserver ->
        kubelet), else of what runs beside the pods."""
        parts = []
        if self.cp is not None:
            for app in (IPAMD, EXTENDER, AGENT, workloads.WEBHOOK):
                with contextlib.suppress(Exception):
                    for p in self.component_pods(app):
                        for c in p["spec"]["containers"]:
                            name = p["metadata"]["name"]
                            text = self.kubectl("-n", "kube-system", "logs", name, "-c", c["name"],
                                                f"--tail={lines}", check=False, timeout=15)
                            parts.append(f"----- {name}/{c['name']} -----\n{text}")
        for rn in self.real.values():
            if rn.node.kubelet is not None:
                parts.append(f"----- kubelet[{rn.name}] -----\n{rn.node.kubelet.log_tail(lines)}")
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        """What ``tke-localcluster stop`` needs when this process is gone."""
        return {
            "workdir": str(self.workdir), "prefix": self.prefix, "fabric": self.fabric,
            "cp_netns": self.cp_netns,
            "kubeconfig": str(self.cp.kubeconfig) if self.cp else "",
            "cluster": str(self.cp.workdir) if self.cp else "",
            "emulator": self.emulator.url if self.emulator else "",
            "nodes": {n: {"netns": rn.node.netns_name, "cgroup": rn.node.cgroup_root,
                          "workdir": str(rn.node.workdir), "instance": rn.instance_id}
                      for n, rn in self.real.items()},
            "pid": os.getpid(),
        }

    def write_state(self) -> None:
        (self.workdir / "environment.json").write_text(json.dumps(self.state(), indent=2))

    # ---- stop -----------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop everything (nodes first, while the API still answers); return what could not
        be cleaned. Each step's time goes to ``stop_timings``."""
        problems: list[str] = []

        def step(what: str, fn: Callable[[], object]) -> None:
            t0 = time.monotonic()
            try:
                left = fn()
                if isinstance(left, list):
                    problems.extend(f"{what}: {x}" for x in left)
            except Exception as exc:  # noqa: BLE001 - teardown reaches everything
                problems.append(f"{what}: {exc}")
            self.stop_timings.append((what, time.monotonic() - t0))

        for rn in reversed(list(self.real.values())):
            step(f"node {rn.name}", rn.node.stop)
        self.real.clear()
        if self.plumber is not None:
            step("ENI plumber", self.plumber.stop)
            self.plumber = None
        # the control plane's network first: its kube-proxy and the connections through
        # the apiserver's endpoint go before the apiserver is asked to stop
        for d in reversed(self.cp_daemons):
            step(d.name, d.stop)
        self.cp_daemons.clear()
        if self.cp is not None:
            step("control plane", self.cp.stop)
        step("emulator", self._stack.close)
        self.emulator = None
        step("VPC fabric + control plane netns",
             lambda: CloudNetwork(self.prefix, ()).down())
        return problems


__all__ = ["DEFAULT_NODES", "NO_SUBNET_NODE", "Environment", "RealNode"]
