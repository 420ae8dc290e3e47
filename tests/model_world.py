"""The world the model-based IPAM test drives (tests/unit/test_model_ipam.py):
the emulator, one Kubernetes store, ipamd (the real ``ipamd.app.App`` wiring:
informers, controllers, work queue — its worker threads played in-line), and
per node the real agent (``cni.agent.agent.Agent`` with its checkpoint,
reconciler and reporter) over ``FakeNet``, plus the pods as kubelet sees them.

What is real and what is faked is listed in the test module's docstring."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cloud.adapter import TencentCloud
from cloud.errors import CloudError
from cloud.hooks import CallHooks
from cloud.settings import CloudSettings
from cni.agent import checkpoint as ckpt
from cni.agent.agent import Agent, AgentSettings
from cni.agent.cli import start_recovery
from cni.agent.cnitypes import CniError, CniRequest
from cni.agent.config import AgentConfig
from cni.agent.ipsource import IpUsage, NodeIpView
from cni.agent.reconcile import Reconciler as AgentReconciler
from cni.agent.reporter import Reporter
from cni.agent.sources.kube_ipsource import eni_of, ip_of, status_patch
from core import names
from ipamd.app import App
from ipamd.config import Settings
from ipamd.kube.api import KubeError
from ipamd.state import CLAIM, NODE
from tests.model_fakes import (
    Crash,
    FakeKube,
    FakeNet,
    InProcessTransport,
    MemoryPodSource,
    Store,
    merge_patch,
)
from vpcsim.faults import Faults
from vpcsim.server import Emulator
from vpcsim.spec import build

log = logging.getLogger(__name__)

CLUSTER = "cls-model001"
REGION = "ap-guangzhou"
VPC, OTHER_VPC = "vpc-sim00001", "vpc-sim00002"
ZONE = "ap-guangzhou-3"
NODE_SUBNET, POD_SUBNET, OTHER_SUBNET = "subnet-sim00003", "subnet-sim00033", "subnet-sim00099"
NODES = {"n1": "ins-sim00001", "n2": "ins-sim00002", "n3": "ins-sim00003"}
OTHER_INSTANCE = "ins-sim00009"  # another cluster's node, in another VPC
NS = "default"
SECRET_ID, SECRET_KEY = "AKIDmodel", "model-secret"
MIN_PREBIND, MAX_PREBIND = 1, 1

SPEC: dict[str, Any] = {
    "region": REGION,
    "vpcs": [
        {
            "id": VPC,
            "name": "model",
            "cidr": "10.0.0.0/16",
            "subnets": [
                {"id": NODE_SUBNET, "name": "node", "cidr": "10.0.3.0/24", "zone": ZONE},
                {"id": POD_SUBNET, "name": "pod", "cidr": "10.0.32.0/26", "zone": ZONE},
            ],
            "instances": [
                {"id": iid, "type": "S5.LARGE8", "subnet": "node"} for iid in NODES.values()
            ],
        },
        {
            "id": OTHER_VPC,
            "name": "other-cluster",
            "cidr": "172.16.0.0/16",
            "subnets": [
                {"id": OTHER_SUBNET, "name": "other", "cidr": "172.16.1.0/24", "zone": ZONE}
            ],
            "instances": [{"id": OTHER_INSTANCE, "type": "S5.LARGE8", "subnet": "other"}],
        },
    ],
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": names.CONFIGMAP_NAME, "namespace": names.CONFIGMAP_NAMESPACE},
    "data": {names.CM_VPC_ID: VPC, names.CM_SUBNET_ID: POD_SUBNET},
}


def _noop_sleep(_: float) -> None:
    return None


def make_cloud(
    emulator: Emulator, cluster_id: str = CLUSTER, hooks: CallHooks | None = None
) -> tuple[TencentCloud, InProcessTransport]:
    """The cloud as ipamd's CLI builds it (the adapter with the app's hooks), in-process."""
    transport = InProcessTransport(emulator, SECRET_ID, SECRET_KEY, REGION)
    settings = CloudSettings(
        region=REGION,
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        cluster_id=cluster_id,
        max_attempts=2,
        backoff_base_s=0.001,
        task_poll_s=0.001,
    )
    return TencentCloud(settings, transport, sleep=_noop_sleep, hooks=hooks), transport


class TrimGuard(FakeKube):
    """ipamd's API client, checking one rule on every write it makes: a dynamic
    warm IP is asked back (spec.state Releasing) only from a node that holds
    more free dynamic IPs than --max-prebind (a trim), never because ipamd
    does not know its subnets (issue 11, item 1)."""

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("spec") or {}
        if "/vpcips/" in path and not path.endswith("/status") and spec.get("state") == "Releasing":
            name = path.rsplit("/", 1)[1]
            cur = self.store.get("vpcips", "", name)
            if cur is not None and not (cur.get("spec") or {}).get("claim"):
                node = cur["spec"].get("nodeName", "")
                free = 0
                for o in self.store.items("vpcips"):
                    s, st = o.get("spec") or {}, o.get("status") or {}
                    if s.get("nodeName") != node or s.get("claim") or s.get("state") != "Assigned":
                        continue
                    if st.get("phase", "") not in ("InUse", "Cooldown"):
                        free += 1  # not used: what the warm-pool rule counts as spare
                assert free > MAX_PREBIND, (
                    f"ipamd asked back warm IP {name} of node {node}, which holds only {free} "
                    f"free dynamic IPs (--max-prebind {MAX_PREBIND}): not a trim"
                )
        return super().patch(path, body)


class Ipamd:
    """One ipamd process: the real App over the store; workers played in-line."""

    def __init__(self, store: Store, emulator: Emulator) -> None:
        self.kube = TrimGuard(store)
        settings = Settings(
            cluster_id=CLUSTER,
            min_prebind=MIN_PREBIND,
            max_prebind=MAX_PREBIND,
            ip_cooldown=timedelta(0),
            trim_interval=timedelta(0),
            workers=1,
            leader_elect=False,
            claim_expired_duration=None,
            leaked_eni_min_age=timedelta(0),  # the model has no clock: a leak is one at once
        )
        self.app = App(
            settings,
            self.kube,  # type: ignore[arg-type]
            lambda hooks: make_cloud(emulator, hooks=hooks)[0],
        )
        self.transport: InProcessTransport = self.app.deps.cloud.transport  # type: ignore[attr-defined]
        self.retry: set[str] = set()
        self.started = False

    def relist(self) -> None:
        """Deliver every change since the last look (what the watches do)."""
        for inf in self.app.informers:
            inf._relist()
            inf.synced.set()

    def start(self) -> None:
        """``App._lead``: first subnet sync, first reconcile, everything queued."""
        app, st = self.app, self.app.state
        self.relist()
        st.configmap_data = app.configmaps.get(
            f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"
        )
        self.started = True
        app._guard("subnets", app.subnets.sync)
        app._guard("reconcile", app.reconciler.run_once)
        for n in st.nodes_with_work():
            app.queue.add(NODE + n)
        assert st.claims is not None and st.pods is not None
        for key, _ in st.claims.items():
            app.queue.add(CLAIM + key)
        for key, _ in st.pods.items():
            app.queue.add(CLAIM + key)
        self.drain()

    def tick(self) -> None:
        """A while of the periodic loop and the workers."""
        app, st = self.app, self.app.state
        self.relist()
        app._guard("subnet-refresh", app.subnets.refresh)
        for n in st.nodes_with_work():
            app.queue.add(NODE + n)
        self.drain()

    def stale_pass(self) -> None:
        """What a leader that has not noticed the hand-over does: its workers go
        on from its caches as they are (no newer watch events)."""
        for n in self.app.state.nodes_with_work():
            self.app.queue.add(NODE + n)
        self.drain()

    def reconcile(self) -> None:
        self.relist()
        self.app._guard("reconcile", self.app.reconciler.run_once)
        self.drain()

    def drain(self, limit: int = 200) -> None:
        q = self.app.queue
        for key in sorted(self.retry):
            q.add(key)
        self.retry.clear()
        for _ in range(limit):
            key = q.get(timeout=0)
            if key is None:
                return
            try:
                self.app.process(key)
                q.forget(key)
            except (CloudError, KubeError) as exc:
                log.info("model ipamd: %s failed: %s", key, exc)
                self.retry.add(key)
            finally:
                q.done(key)


# --- node agent ---------------------------------------------------------------------


class StoreIpSource:
    """``NodeIpSource`` over the store (what ``KubeNodeIpSource`` keeps by watch):
    the node's VpcENIs and VpcIPs; usage written to VpcIP.status (404 skipped)."""

    def __init__(self, store: Store, node: str) -> None:
        self.store = store
        self.node = node
        self.generation = 0

    def view(self) -> NodeIpView:
        enis = [
            e
            for o in self.store.items("vpcenis")
            if (o.get("spec") or {}).get("nodeName") == self.node and (e := eni_of(o))
        ]
        ips = [
            ip_of(o)
            for o in self.store.items("vpcips")
            if (o.get("spec") or {}).get("nodeName") == self.node
        ]
        self.generation += 1
        return NodeIpView(
            tuple(sorted(enis, key=lambda e: e.eni_id)),
            tuple(sorted(ips, key=lambda i: i.ip)),
            self.generation,
        )

    def wait_for_change(self, generation: int, timeout: float) -> NodeIpView:
        return self.view()

    def held(self) -> dict[str, dict[str, Any]]:
        """What the API holds of this node's usage (the watch cache's statuses)."""
        return {
            o["metadata"]["name"]: dict(o.get("status") or {})
            for o in self.store.items("vpcips")
            if (o.get("spec") or {}).get("nodeName") == self.node
        }

    def report(self, usage: list[IpUsage]) -> None:
        for u in usage:
            cur = self.store.get("vpcips", "", u.ip)
            if cur is None:
                continue
            self.store.put("vpcips", merge_patch(cur, status_patch(u)))

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


@dataclass
class NodeAgent:
    """One incarnation of the agent on a node (a restart makes a new one)."""

    node: str
    agent: Agent
    reconciler: AgentReconciler
    reporter: Reporter
    source: StoreIpSource


def start_agent(
    node: str, store: Store, net: FakeNet, pods: MemoryPodSource, path: str
) -> NodeAgent:
    """The agent's start order (cli.py): load the checkpoint (an unreadable one
    starts the rebuild from the live links), reconcile against the live links,
    compact the checkpoint, then serve."""
    source = StoreIpSource(store, node)
    loaded = ckpt.load_checked(path)
    agent = Agent(
        AgentSettings(eni_only=True, cooldown=0.0, static_ip_wait=0.0, host_veth_prefix="tke"),
        source=source,
        pods=pods,
        netops=net,  # type: ignore[arg-type]
        state=loaded.state,
        checkpoint_path=path,
    )
    start_recovery(AgentConfig(node_name=node, ip_source="file"), agent, loaded)
    reporter = Reporter(agent, interval=3600)
    reconciler = AgentReconciler(agent, interval=3600)
    reconciler.run_once()
    agent.checkpoint.flush()
    agent.ready.set()
    return NodeAgent(node, agent, reconciler, reporter, source)


def stop_agent(na: NodeAgent) -> None:
    """SIGKILL once the last change is on disk (the writer thread stays idle)."""
    cp = na.agent.checkpoint
    with na.agent.lock:
        seq = cp.mark()
    cp.wait(seq)
    fd = getattr(cp, "_fd", None)
    if fd is not None:
        os.close(fd)
        cp._fd = None


# --- pods ----------------------------------------------------------------------------


@dataclass
class Pod:
    name: str
    uid: str
    node: str
    static: bool  # a StatefulSet pod annotated for a static IP
    annotations: dict[str, str] = field(default_factory=dict)
    owner_kind: str = "StatefulSet"
    container: str = ""  # the current sandbox; "" until an ADD succeeded
    ip: str = ""
    serial: int = 0

    @property
    def running(self) -> bool:
        return bool(self.container)

    @property
    def netns(self) -> str:
        return f"/var/run/netns/{self.container}"


def pod_object(p: Pod) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": p.name,
            "namespace": NS,
            "uid": p.uid,
            "annotations": dict(p.annotations),
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": p.owner_kind,
                    "name": p.name.rsplit("-", 1)[0],
                    "uid": "owner-" + p.name.rsplit("-", 1)[0],
                    "controller": True,
                }
            ],
        },
        "spec": {"nodeName": p.node},
        "status": {
            "phase": "Running" if p.running else "Pending",
            **({"podIP": p.ip} if p.ip else {}),
        },
    }


def cni_request(command: str, p: Pod, container: str) -> CniRequest:
    return CniRequest(
        command=command,
        container_id=container,
        netns=f"/var/run/netns/{container}",
        ifname="eth0",
        args={"K8S_POD_NAMESPACE": NS, "K8S_POD_NAME": p.name, "K8S_POD_UID": p.uid},
        path="/opt/cni/bin",
        conf={"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"},
    )


def new_container() -> str:
    return uuid.uuid4().hex[:16]


def damage(path: str, how: str) -> None:
    """``torn``: the agent died in the middle of appending a snapshot (never
    acknowledged); ``unreadable``: the file cannot be decoded at all (a bad
    disk, a hand edit, a version this agent does not know)."""
    p = Path(path)
    if not p.exists():
        return
    if how == "torn":
        with p.open("ab") as fh:
            fh.write(b'{"version": 1, "allocations": [{"ip": "10.0.')
    elif how == "unreadable":
        p.write_bytes(b"\x00\x17garbage{not json")


def new_emulator() -> Emulator:
    faults = Faults(task_delay_ms=0.0, rate_limits=False)
    return Emulator(build(SPEC), secret_id=SECRET_ID, secret_key=SECRET_KEY, faults=faults, seed=1)


def is_crash(exc: BaseException) -> bool:
    return isinstance(exc, Crash)


__all__ = ["CniError"]
