"""Wiring: informers (always running, so a standby has warm caches), leader
election, and — while leading — the workers, the periodic loops (subnet
refresh, reconcile, pool re-check, metrics) and the first full reconcile.

One leader at a time: every cloud write is fenced by the elector's
``is_leader`` (``ipamd.fence``, hooked into the cloud adapter), and a
graceful stop stops the workers *before* the Lease is released (a worker
still running when the time limit is up leaves the Lease to expire instead)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from cloud.errors import CloudError
from cloud.hooks import CallHooks
from cloud.ports import CloudApi
from core import models as m
from core import names
from ipamd import metrics
from ipamd.config import Settings
from ipamd.controllers.claimctl import ClaimController
from ipamd.controllers.eipctl import EIP, EipController
from ipamd.controllers.necctl import NECS
from ipamd.controllers.nodes import NodeController
from ipamd.controllers.reconcile import Reconciler
from ipamd.controllers.sgctl import SECURITY_GROUPS, SecurityGroupController
from ipamd.controllers.subnetctl import SubnetController
from ipamd.deps import Deps
from ipamd.fence import LeaderFence
from ipamd.kube import paths
from ipamd.kube.api import JSON, KubeApi, KubeError
from ipamd.kube.crds import CrdWriter
from ipamd.kube.events import EventRecorder
from ipamd.kube.informer import Informer
from ipamd.kube.lease import LeaseClient
from ipamd.kube.objects import ObjectWriter
from ipamd.leader import LeaderElector
from ipamd.rules import awaiting, secgroups
from ipamd.rules.records import (
    claim_from_obj,
    eni_from_obj,
    ip_from_obj,
    node_from_obj,
    pod_from_obj,
)
from ipamd.rules.warm import nec_from_obj
from ipamd.state import CLAIM, NODE, RECONCILE, SUBNETS, ClusterState
from ipamd.workqueue import WorkQueue

log = logging.getLogger(__name__)

#: builds the cloud client with the hooks the app gives it (its leader fence)
CloudFactory = Callable[[CallHooks], CloudApi]


def _configmap_summary(obj: JSON) -> dict[str, str] | None:
    if (obj.get("metadata") or {}).get("name") != names.CONFIGMAP_NAME:
        return None
    data = obj.get("data") or {}
    return {str(k): str(v) for k, v in data.items()}


class App:
    def __init__(self, settings: Settings, kube: KubeApi, make_cloud: CloudFactory) -> None:
        """Build everything, start nothing: the cluster view and its informers,
        the leader elector and the write fence, the shared deps (with the cloud
        client ``make_cloud`` builds around the fence), the controllers."""
        self.settings = settings
        self.kube = kube
        self.stop = threading.Event()
        self.queue = WorkQueue()
        self.state = ClusterState(self.queue)
        self.configmaps: Informer[dict[str, str]] = Informer(
            kube, paths.KUBE_SYSTEM_CONFIGMAPS, "configmaps", _configmap_summary, self._on_configmap
        )
        self.informers: list[Informer[Any]] = [*self._cluster_informers(kube), self.configmaps]
        self.sg_necs: Informer[secgroups.SgNecRec] | None = None
        if settings.enable_security_groups:
            self.sg_necs = Informer(
                kube, NECS, "nodeeniconfigs-sg", secgroups.sg_nec_from_obj, self._on_sg_nec
            )
            self.informers.append(self.sg_necs)
        self.fence = LeaderFence(self.may_write)
        self.elector = self._elector(kube) if settings.leader_elect else None
        self._elector_stop = threading.Event()
        self._elector_thread: threading.Thread | None = None
        self.deps = self._deps(kube, make_cloud)
        self.nodes = NodeController(self.deps)
        self.claims = ClaimController(self.deps, self.nodes)
        self.subnets = SubnetController(self.deps)
        self.reconciler = Reconciler(self.deps, self.nodes)
        self.security_groups: SecurityGroupController | None = None
        if settings.enable_security_groups:
            self.security_groups = SecurityGroupController(self.deps, self.sg_necs)
            self.deps.eni_security_groups = self.security_groups.groups_for_new_eni
        self.eips: EipController | None = None
        if settings.enable_pod_eip:
            self.eips = EipController(self.deps, kube, self.queue)
            self.informers.append(self.eips.pods)
        self.leading = threading.Event()
        self.ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lost_leadership = False

    def _cluster_informers(self, kube: KubeApi) -> list[Informer[Any]]:
        """The cluster view's informers (each feeds one of its handlers)."""
        st = self.state
        st.nodes = Informer(kube, paths.NODES, "nodes", node_from_obj, st.on_node)
        st.pods = Informer(kube, paths.PODS, "pods", pod_from_obj, st.on_pod)
        st.ips = Informer(kube, paths.VPC_IPS, "vpcips", ip_from_obj, st.on_ip)
        st.enis = Informer(kube, paths.VPC_ENIS, "vpcenis", eni_from_obj, st.on_eni)
        st.claims = Informer(kube, paths.CLAIMS, "vpcipclaims", claim_from_obj, st.on_claim)
        st.necs = Informer(kube, NECS, "nodeeniconfigs", nec_from_obj, st.on_nec)
        st.waiting_pods = Informer(
            kube,
            paths.PODS,
            "waiting-pods",
            awaiting.waiting_pod_from_obj,
            st.on_waiting_pod,
            field_selector=awaiting.FIELD_SELECTOR,
        )
        return [st.nodes, st.pods, st.ips, st.enis, st.claims, st.necs, st.waiting_pods]

    def _elector(self, kube: KubeApi) -> LeaderElector:
        s = self.settings
        return LeaderElector(
            LeaseClient(kube, s.lease_namespace, s.lease_name),
            s.identity,
            lease_duration=s.lease_duration.total_seconds(),
            renew_deadline=s.renew_deadline.total_seconds(),
            retry_period=s.retry_period.total_seconds(),
            on_started=self._start_leading,
            on_stopped=self._lost,
        )

    def _deps(self, kube: KubeApi, make_cloud: CloudFactory) -> Deps:
        """What the controllers share; the cloud client gets the write fence."""
        st = self.state
        assert st.ips is not None and st.enis is not None and st.claims is not None
        return Deps(
            settings=self.settings,
            state=st,
            cloud=make_cloud(self.fence),
            crds=CrdWriter(kube, st.ips, st.enis, st.claims),
            objects=ObjectWriter(kube),
            events=EventRecorder(kube),
        )

    def _on_configmap(
        self, key: str, old: dict[str, str] | None, new: dict[str, str] | None
    ) -> None:
        self.state.configmap_data = new
        self.queue.add(SUBNETS)

    def _on_sg_nec(
        self, key: str, old: secgroups.SgNecRec | None, new: secgroups.SgNecRec | None
    ) -> None:
        if self.security_groups is not None:
            self.security_groups.on_nec(key, old, new)

    # --- lifecycle ---
    def start_informers(self) -> None:
        for inf in self.informers:
            inf.start(self.stop)

    def wait_synced(self, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        for inf in self.informers:
            while not inf.synced.wait(0.5):
                if self.stop.is_set():
                    return False
                if time.monotonic() >= deadline:
                    log.error("informer %s did not sync within %.0fs", inf.name, timeout)
                    return False
        return True

    def may_write(self) -> bool:
        """The fence of every cloud write: the leader (surely), or no election."""
        if self.elector is None:
            return True
        return self.elector.is_leader()

    def run(self) -> int:
        self.start_informers()
        if self.elector is not None:
            t = threading.Thread(
                target=self.elector.run, args=(self._elector_stop,), name="leader", daemon=True
            )
            t.start()
            self._elector_thread = t
        else:
            self._start_leading()
        self.stop.wait()
        self.shutdown()
        return 1 if self.lost_leadership else 0

    def _lost(self) -> None:
        log.error("lost leadership: stopping so that only one ipamd acts on the cloud")
        metrics.LEADER.set(0)
        self.lost_leadership = True
        self.stop.set()

    def _start_leading(self) -> None:
        metrics.LEADER.set(1)
        t = threading.Thread(target=self._lead, name="lead", daemon=True)
        t.start()
        self._threads.append(t)

    def _lead(self) -> None:
        self.leading.set()
        if not self.wait_synced():
            self.stop.set()
            return
        if self.stop.is_set():
            return
        self.state.configmap_data = self.configmaps.get(
            f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"
        )
        if not self._guard("subnets", self.subnets.sync):
            # retried by the workers with backoff; until it succeeds the decision
            # is the one read back (or unknown, and then nothing is drained)
            self.queue.add(SUBNETS)
        self._guard("reconcile", self.reconciler.run_once)
        if self.security_groups is not None:
            self.security_groups.queue_all()
        if self.eips is not None:
            self._guard("eip-sweep", self.eips.queue_all)
        for n in self.state.nodes_with_work():
            self.queue.add(NODE + n)
        assert self.state.claims is not None and self.state.pods is not None
        for key, _ in self.state.claims.items():
            self.queue.add(CLAIM + key)
        for key, _ in self.state.pods.items():
            self.queue.add(CLAIM + key)
        if self.stop.is_set():
            return
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._worker, name=f"worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._periodic, name="periodic", daemon=True)
        t.start()
        self._threads.append(t)
        self.ready.set()
        log.info(
            "leading: %d nodes, %d VpcENIs, %d VpcIPs, %d claims",
            len(self.state.nodes or []),
            len(self.state.enis or []),
            len(self.state.ips or []),
            len(self.state.claims or []),
        )

    def _guard(self, what: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except (CloudError, KubeError) as exc:
            log.warning("%s failed: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        metrics.WORK_ERRORS.labels(what).inc()
        return False

    def process(self, key: str) -> None:
        if key.startswith(NODE):
            self.nodes.sync(key[len(NODE) :])
        elif key.startswith(CLAIM):
            self.claims.sync(key[len(CLAIM) :])
        elif key == SUBNETS:
            self.subnets.sync()
        elif key == RECONCILE:
            self.reconciler.run_once()
        elif key.startswith(SECURITY_GROUPS) and self.security_groups is not None:
            self.security_groups.sync(key[len(SECURITY_GROUPS) :])
        elif key.startswith(EIP) and self.eips is not None:
            self.eips.sync(key[len(EIP) :])

    def _worker(self) -> None:
        while not self.stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            kind = key.split(":", 1)[0]
            try:
                self.process(key)
                self.queue.forget(key)
            except (CloudError, KubeError) as exc:
                delay = self.queue.retry(key)
                metrics.WORK_ERRORS.labels(kind).inc()
                log.warning("%s failed: %s; retry in %.1fs", key, exc, delay)
            except Exception:
                delay = self.queue.retry(key)
                metrics.WORK_ERRORS.labels(kind).inc()
                log.exception("%s failed; retry in %.1fs", key, delay)
            finally:
                self.queue.done(key)

    def _periodic(self) -> None:
        s = self.settings
        next_refresh = next_reconcile = time.monotonic()
        next_reconcile += s.reconcile_interval.total_seconds()
        next_nodes = next_metrics = 0.0
        nodes_every = max(1.0, min(10.0, s.trim_interval.total_seconds() / 2))
        while not self.stop.wait(0.5):
            now = time.monotonic()
            if now >= next_refresh:
                next_refresh = now + s.subnet_refresh_interval.total_seconds()
                self._guard("subnet-refresh", self.subnets.refresh)
                # the safety net: every static IP still waiting for room tries
                # again once per refresh (room may appear where nothing tells us)
                self.state.room_appeared()
            if now >= next_reconcile:
                next_reconcile = now + s.reconcile_interval.total_seconds()
                self.queue.add(RECONCILE)
                if self.security_groups is not None:
                    self.security_groups.queue_all()
                if self.eips is not None:
                    self._guard("eip-sweep", self.eips.queue_all)
            if now >= next_nodes:
                next_nodes = now + nodes_every
                for n in self.state.nodes_with_work():
                    self.queue.add(NODE + n)
                if self.settings.enable_ownerref and self.state.claims is not None:
                    # no watch on every workload kind: re-check owners of idle claims
                    for key, c in self.state.claims.items():
                        if c.owner is not None and c.phase == m.CLAIM_PHASE_RESERVED:
                            self.queue.add(CLAIM + key)
            if now >= next_metrics:
                next_metrics = now + 10
                self.update_gauges()

    def update_gauges(self) -> None:
        st = self.state
        assert st.ips is not None and st.enis is not None and st.claims is not None
        by: Counter[tuple[str, str]] = Counter(
            (ip.subnet, ip.phase or "Free") for ip in st.ips.values()
        )
        metrics.IPS.clear()
        for (subnet, phase), n in by.items():
            metrics.IPS.labels(subnet, phase).set(n)
        metrics.ENIS.clear()
        for subnet, n in Counter(e.subnet for e in st.enis.values()).items():
            metrics.ENIS.labels(subnet).set(n)
        metrics.CLAIMS.clear()
        for phase, n in Counter(c.phase or "Pending" for c in st.claims.values()).items():
            metrics.CLAIMS.labels(phase).set(n)
        metrics.NODES.set(len(st.nodes or []))
        metrics.AWAITING.set(sum(st.awaiting.values()))

    def shutdown(self, limit: float = 10.0) -> None:
        """Stop the workers, then (only if they all stopped) release the Lease.

        The elector renews no more from the first moment, so the other replica
        leads at most one lease duration later whatever the workers do; they get
        ``limit`` seconds, or less when the fence shuts before that (past it
        they could not write to the cloud anyway)."""
        self.stop.set()
        if self.elector is not None:
            self.elector.hold()
            if self.elector.leading.is_set():
                limit = min(limit, self.elector.fence_left())
        self.queue.shutdown()
        deadline = time.monotonic() + limit
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        running = [t.name for t in self._threads if t.is_alive()]
        if self.elector is not None:
            if running:
                log.error(
                    "workers still running after %.0fs (%s): not releasing the lease, "
                    "it expires after the lease duration",
                    limit,
                    ", ".join(running),
                )
                self.elector.release_on_stop = False
            self._elector_stop.set()
            if self._elector_thread is not None:
                # the release: one get and one update, each bounded by the renew deadline
                self._elector_thread.join(2 * self.settings.renew_deadline.total_seconds() + 1)
        metrics.LEADER.set(0)
