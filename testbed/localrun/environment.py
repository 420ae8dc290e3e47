"""The whole environment, started and stopped as one (docs/local-run.md).

    env = Environment(workdir)
    env.start()        # emulator, control plane (+ scheduler -> extender, + KCM), deploy/,
                       # ipamd + extender, real nodes with agent + device plugin, plumber
    env.kube.pods()    # ...
    env.stop()         # everything gone: processes, netns, mounts, cgroups

Phase timings are in ``env.phases``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localcluster.controlplane import ControlPlane
from localcluster.extender_pki import ExtenderPKI, make_extender_pki
from localcluster.fakenodes import FakeNode
from localcluster.ports import free_ports
from localnode import netns
from localnode.node import Node
from localnode.proc import Daemon
from localrun import manifests
from localrun.agentcreds import node_bound_kubeconfig
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
from localrun.nodedaemons import NodeSpec, RealNode, agent_argv, device_plugin_argv
from localrun.plumber import Plumber
from localrun.programs import from_workload
from localrun.timings import Phases
from localrun.webhook import LocalWebhook
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


@dataclass
class Environment:
    workdir: Path
    nodes: Sequence[NodeSpec] = DEFAULT_NODES
    kwok_nodes: int = 2  # plain kwok nodes for scale (no eni-ip), plus NO_SUBNET_NODE
    prefix: str = "tkl"  # netns / cgroup / fabric names: tkl-node-a, tkl-fabric
    ipamd_extra_env: dict[str, str] = field(default_factory=dict)
    #: True: ipamd, the extender and the agents authenticate as their deploy/
    #: ServiceAccounts (their RBAC is deploy/'s); False: the admin kubeconfig
    service_accounts: bool = True
    agent_extra_args: Sequence[str] = ()
    progress: Callable[[str], None] = print

    emulator: RemoteEmulator | None = field(default=None, init=False)
    cp: ControlPlane | None = field(default=None, init=False)
    objs: list[dict[str, Any]] = field(default_factory=list, init=False)
    layout: CloudLayout | None = field(default=None, init=False)
    real: dict[str, RealNode] = field(default_factory=dict, init=False)
    ipamd: Daemon | None = field(default=None, init=False)
    extender: Daemon | None = field(default=None, init=False)
    webhook: LocalWebhook | None = field(default=None, init=False)
    extender_pki: ExtenderPKI | None = field(default=None, init=False)
    plumber: Plumber | None = field(default=None, init=False)
    phases: Phases = field(init=False)
    ports: dict[str, int] = field(default_factory=dict, init=False)
    stop_timings: list[tuple[str, float]] = field(default_factory=list, init=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.phases = Phases(progress=self.progress)

    # ---- names ----------------------------------------------------------------------------
    @property
    def fabric(self) -> str:
        return f"{self.prefix}-fabric"

    @property
    def kube(self) -> Kube:
        assert self.cp is not None, "environment not started"
        return Kube(self.cp.kubeconfig, self.cp.server)

    @property
    def extender_url(self) -> str:
        """The verbs: HTTPS, kube-scheduler's client certificate required."""
        return f"https://127.0.0.1:{self.ports['extender']}"

    @property
    def extender_health_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['extender-health']}"

    def credentials(self, service_account: str) -> Path:
        """The kubeconfig a program of ``service_account`` (kube-system) uses."""
        assert self.cp is not None
        if not self.service_accounts:
            return self.cp.kubeconfig
        path = self.workdir / "credentials" / f"{service_account}.kubeconfig"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.kube.service_account_kubeconfig("kube-system", service_account, path)
        return path

    def agent_credentials(self, node: str) -> Path:
        """The agent's kubeconfig on ``node``: its token is bound to a stand-in agent pod
        there (localrun.agentcreds), as deploy/agent/node-policy.yaml requires."""
        assert self.cp is not None
        if not self.service_accounts:
            return self.cp.kubeconfig
        path = self.workdir / "credentials" / f"{AGENT}-{node}.kubeconfig"
        if not path.exists():
            node_bound_kubeconfig(self.kube, AGENT, node, path)
        return path

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
        self.ports = dict(zip(("extender", "ipamd-metrics", "ipamd-health", "extender-health",
                               "webhook", "webhook-health"), free_ports(6), strict=True))
        # mutual TLS between kube-scheduler and the extender (made before the scheduler)
        self.extender_pki = make_extender_pki(self.workdir / "extender-pki")
        with self.phases.phase("deploy/ built (kustomize)"):
            self.objs = manifests.kustomize_build()
            manifests.set_container_arg(self.ipamd_workload(), "--clusterid", CLUSTER_ID)
            cm = manifests.find(self.objs, "ConfigMap", "tke-eni-ipamd")
            self.layout = layout_from_configmap(dict(cm["data"]))
        with self.phases.phase("emulated VPC (tke-vpcsim) + instances"):
            self.emulator = self._stack.enter_context(
                spawn_emulator(self.workdir / "vpcsim", self.layout.spec()))
            instances = {s.name: self.emulator.add_instance(
                NODE_SUBNETS[s.zone], s.instance_type, name=s.name)
                for s in (*self.nodes, NO_SUBNET_NODE)}
            by_id = {i["instance_id"]: i for i in self.emulator.state()["instances"]}
        with self.phases.phase("control plane (etcd, apiserver, scheduler, KCM, kwok)"):
            fake = [FakeNode(NO_SUBNET_NODE.name, allocatable={ENI_IP: "27"}, labels={
                ZONE_LABEL: ZONE5, INSTANCE_LABEL: instances[NO_SUBNET_NODE.name],
                "node.kubernetes.io/instance-type": NO_SUBNET_NODE.instance_type})]
            fake += [FakeNode(f"kwok-{i}", labels={ZONE_LABEL: (ZONE3, ZONE4)[i % 2]})
                     for i in range(self.kwok_nodes)]
            self.cp = ControlPlane(self.workdir / "cluster", with_scheduler=True,
                                   scheduler_config=manifests.scheduler_config(
                                       self.extender_url, self.extender_pki.tls_config()),
                                   with_controller_manager=True, kwok_nodes=fake)
            self.cp.start()
        with self.phases.phase("deploy/ applied (CRDs, RBAC, ConfigMap, Deployments)"):
            self._apply_deploy()
        with self.phases.phase("ipamd + scheduler extender (from their Deployments)"):
            self.start_ipamd()
            self.start_extender()
            self.wait_extender_ready()
        with self.phases.phase("admission webhook (certs Job's command, then its Deployment)"):
            self.start_webhook()
        self.plumber = Plumber(self.fabric, self.emulator.state)
        netns.ensure_fabric(self.fabric)
        self.plumber.start()
        for i, spec in enumerate(self.nodes):
            with self.phases.phase(f"real node {spec.name} ({spec.zone}): containerd, agent, "
                                   "device plugin, kubelet"):
                inst = by_id[instances[spec.name]]
                self._start_node(spec, inst, i)
        with self.phases.phase("ENIs attached + plugged, eni-ip advertised on every node"):
            for rn in self.real.values():
                self.wait_node_networking(rn.name)
        self.write_state()

    def _apply_deploy(self) -> None:
        kube = self.kube
        for crd in (o for o in self.objs if o["kind"] == "CustomResourceDefinition"):
            kube.apply(crd)
        for crd in (o for o in self.objs if o["kind"] == "CustomResourceDefinition"):
            name = crd["metadata"]["name"]

            def established(n: str = name) -> bool:
                got = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")
                conds = ((got or {}).get("status") or {}).get("conditions") or []
                return any(c["type"] == "Established" and c["status"] == "True" for c in conds)
            wait_for(f"CRD {name} Established", established, 60)
        for obj in self.objs:
            if obj["kind"] in ("CustomResourceDefinition", "DaemonSet", "Job", "CronJob",
                               "MutatingWebhookConfiguration"):
                continue  # node daemons and the webhook's certs Job run as processes (below);
                # the webhook configuration goes in on loopback (localrun.webhook)
            body = copy.deepcopy(obj)
            if obj["kind"] == "Deployment":
                # our programs run as processes (no image here): the Deployment is the
                # record of their configuration, scaled to zero
                body["spec"]["replicas"] = 0
            kube.apply(body)

    # ---- our cluster processes -------------------------------------------------------------
    def start_ipamd(self, workload: dict[str, Any] | None = None) -> Daemon:
        """ipamd from its Deployment (``workload``: the live object, e.g. after an edit)."""
        assert self.emulator is not None and self.cp is not None
        workload = workload or self.ipamd_workload()
        self.ipamd = from_workload(self.objs, workload, f"{IPAMD}-local",
                                   log=self.workdir / "ipamd.log", extra_argv=[
            "--kubeconfig", str(self.credentials(IPAMD)),
            "--cloud-endpoint", self.emulator.endpoint, "--cloud-protocol", "http",
            "--metrics-address", f"127.0.0.1:{self.ports['ipamd-metrics']}",
            "--health-address", f"127.0.0.1:{self.ports['ipamd-health']}",
            "--identity", f"{IPAMD}-local"],
            extra_env={"TENCENTCLOUD_SECRET_ID": self.emulator.secret_id,  # the optional Secret
             "TENCENTCLOUD_SECRET_KEY": self.emulator.secret_key,
             "TKE_IPAMD_SUBNET_REFRESH_INTERVAL": "5s",
             # leaks from a kill -9 are deleted within a scenario (default: 10m)
             "TKE_IPAMD_LEAKED_ENI_MIN_AGE": "15s", **self.ipamd_extra_env})
        self.ipamd.start()
        return self.ipamd

    def restart_ipamd_from_deployment(self) -> Daemon:
        """What a rollout does to the pod: stop it, start it from the live Deployment."""
        live = self.kube.get(f"/apis/apps/v1/namespaces/kube-system/deployments/{IPAMD}")
        assert live is not None, "Deployment kube-system/tke-eni-ipamd is gone"
        if self.ipamd is not None:
            self.ipamd.stop()
        return self.start_ipamd(live)

    def start_extender(self) -> Daemon:
        assert self.cp is not None and self.extender_pki is not None
        workload = manifests.find(self.objs, "Deployment", EXTENDER)
        self.extender = from_workload(self.objs, workload, f"{EXTENDER}-local",
                                      log=self.workdir / "extender.log", extra_argv=[
            "--kubeconfig", str(self.credentials(EXTENDER)), "--host", "127.0.0.1",
            "--port", str(self.ports["extender"]), "--log-format", "text",
            "--health-port", str(self.ports["extender-health"]),
            *self.extender_pki.extender_args()])
        self.extender.start()
        return self.extender

    def start_webhook(self) -> LocalWebhook:
        """The admission webhook as a cluster installs it (localrun.webhook); its rule
        agrees with the agents' (--eni-only or not)."""
        assert self.cp is not None
        eni_only = "--eni-only" in self.agent_extra_args
        self.webhook = LocalWebhook(self.objs, self.kube, self.workdir, self.ports["webhook"],
                                    self.ports["webhook-health"], self.credentials,
                                    extra_argv=(f"--eni-only={str(eni_only).lower()}",))
        return self.webhook.up()

    def wait_extender_ready(self) -> None:
        import urllib.request

        def ready() -> bool:
            assert self.extender is not None
            self.extender.check_alive()
            url = self.extender_health_url + "/readyz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310
                return bool(r.status == 200)
            return False
        wait_for("the scheduler extender /readyz", ready, 60, detail=self.logs)

    # ---- real nodes ----------------------------------------------------------------------
    def _start_node(self, spec: NodeSpec, inst: dict[str, Any], index: int) -> RealNode:
        assert self.emulator is not None and self.cp is not None and self.plumber is not None
        emu_port = int(urlsplit(self.emulator.url).port or 0)
        node = Node(spec.name, spec.zone, self.cp, self.workdir / "nodes" / spec.name,
                    external_cni=True, node_ip=f"{inst['private_ip']}/24", fabric=self.fabric,
                    provider_id=f"qcloud:///{ZONE_IDS[spec.zone]}/{inst['instance_id']}",
                    netns_name=f"{self.prefix}-{spec.name}",
                    cgroup_root=f"/{self.prefix}-{spec.name}",
                    extra_forwards=[(emu_port, emu_port)], status_update_frequency="3s",
                    labels={INSTANCE_LABEL: inst["instance_id"],
                            "node.kubernetes.io/instance-type": spec.instance_type})
        rn = RealNode(spec, inst["instance_id"], inst["private_ip"], node,
                      f"10.244.{index + 1}.0/24")
        self.real[spec.name] = rn
        node.start_runtime()
        self.plumber.add_node(rn.instance_id, node.netns_name)
        self.start_agent(rn)
        self.start_device_plugin(rn)
        node.start_kubelet()
        return rn

    def start_agent(self, rn: RealNode) -> Daemon:
        assert self.cp is not None
        return rn.node.run_daemon("agent", agent_argv(rn, self.agent_credentials(rn.name),
                                                      tuple(self.agent_extra_args)))

    def start_device_plugin(self, rn: RealNode) -> Daemon:
        assert self.emulator is not None
        return rn.node.run_daemon(
            "device-plugin", device_plugin_argv(rn, self.emulator.metadata_url(rn.instance_id),
                                                self.emulator.endpoint),
            env={"TENCENTCLOUD_SECRET_ID": self.emulator.secret_id,
                 "TENCENTCLOUD_SECRET_KEY": self.emulator.secret_key})

    def node_daemon(self, node: str, name: str) -> Daemon:
        for d in self.real[node].node.extras:
            if d.name == f"{name}[{node}]":
                return d
        raise KeyError(f"no daemon {name} on {node}")

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

    # ---- introspection ---------------------------------------------------------------------
    def logs(self, lines: int = 25) -> str:
        parts = []
        for d in (self.ipamd, self.extender, self.webhook.daemon if self.webhook else None):
            if d is not None:
                parts.append(f"----- {d.name} ({d.log}) -----\n{d.log_tail(lines)}")
        for rn in self.real.values():
            for d in rn.node.extras:
                parts.append(f"----- {d.name} ({d.log}) -----\n{d.log_tail(lines)}")
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        """What ``tke-localcluster stop`` needs when this process is gone."""
        return {
            "workdir": str(self.workdir), "prefix": self.prefix, "fabric": self.fabric,
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
        """Stop everything (nodes first, while ipamd and the API still answer); return what
        could not be cleaned. Each step's time goes to ``stop_timings``."""
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
        if self.webhook is not None:
            step("admission webhook", self.webhook.stop)
            self.webhook = None
        for d in (self.extender, self.ipamd):
            if d is not None:
                # TERM, then KILL after 5 s (the extender ignores TERM for now: see the doc)
                step(d.name, functools.partial(d.stop, 5.0))
        self.extender = self.ipamd = None
        if self.cp is not None:
            step("control plane", self.cp.stop)
        step("emulator", self._stack.close)
        self.emulator = None
        step("fabric netns", lambda: netns.delete(self.fabric))
        return problems
