"""ipamd's in-memory view of the cluster: the informers' summaries plus
indexes (IPs and ENIs by node), per-node locks, the node → instance facts
cache and the current subnet decision. Handlers keep the indexes current and
turn changes into work-queue keys."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass

from cloud.models import Subnet
from core import models as m
from core.ids import SubnetId
from core.limits import EniLimits
from ipamd.kube.informer import Informer
from ipamd.rules import pool
from ipamd.rules.awaiting import WaitingPod
from ipamd.rules.records import ClaimRec, EniRec, IpRec, NodeRec, PodRec
from ipamd.rules.subnets import SubnetDecision
from ipamd.rules.warm import NecRec, WarmTargets
from ipamd.workqueue import WorkQueue

NODE = "node:"
CLAIM = "claim:"
SUBNETS = "subnets"
RECONCILE = "reconcile"


@dataclass(frozen=True, slots=True)
class NodeFacts:
    instance_id: str
    zone: str
    instance_type: str
    limits: EniLimits


def _newly_attached(old: EniRec | None, new: EniRec) -> bool:
    """``new`` is attached to its node, and was not (to that node) before."""
    if new.phase != m.ENI_PHASE_ATTACHED:
        return False
    return old is None or old.phase != new.phase or old.node != new.node


class ClusterState:
    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.nodes: Informer[NodeRec] | None = None
        self.pods: Informer[PodRec] | None = None
        self.ips: Informer[IpRec] | None = None
        self.enis: Informer[EniRec] | None = None
        self.claims: Informer[ClaimRec] | None = None
        self.necs: Informer[NecRec] | None = None
        # pods bound to a node that wait for a dynamic IP (ipamd.rules.awaiting)
        self.waiting_pods: Informer[WaitingPod] | None = None
        # node -> IPs its waiting pods were owed at its last pool pass (the gauge)
        self.awaiting: dict[str, int] = {}
        # node -> warm targets in force (ipamd.controllers.necctl)
        self.warm: dict[str, WarmTargets] = {}
        self._idx_lock = threading.Lock()
        self.ips_by_node: dict[str, set[str]] = defaultdict(set)
        self.ips_by_claim: dict[str, set[str]] = defaultdict(set)  # claim key -> IPs
        self.enis_by_node: dict[str, set[str]] = defaultdict(set)
        self.waiting_by_node: dict[str, set[str]] = defaultdict(set)  # node -> pod keys
        self.facts: dict[str, NodeFacts] = {}
        self.facts_miss: dict[str, tuple[str, float]] = {}  # node -> (instance, when not found)
        self._locks: dict[str, threading.RLock] = {}
        self._locks_lock = threading.Lock()
        self.decision: SubnetDecision | None = None
        self.exhausted: set[str] = set()  # subnets the cloud said are out of IPs
        self.last_trim: dict[str, float] = {}
        self.surplus_since: dict[str, float] = {}  # node -> when its pool went over target
        # node -> the empty ENI kept ahead (ipamd.rules.pool.keep_ahead)
        self.ahead: dict[str, pool.Ahead] = {}
        self.configmap_data: dict[str, str] | None = None
        self.configmap_seen = False
        # static IPs waiting for room (claim key -> (node, zone)): queued again
        # when room appears there (``room_appeared``) and at each subnet refresh
        self._waiting: dict[str, tuple[str, str]] = {}

    # --- locks ---
    def node_lock(self, node: str) -> threading.RLock:
        with self._locks_lock:
            lock = self._locks.get(node)
            if lock is None:
                lock = self._locks[node] = threading.RLock()
            return lock

    # --- static IPs waiting for room ---
    def wait_for_room(self, claim: str, node: str, zone: str) -> None:
        """``claim`` waits for room on ``node`` (in ``zone``): the subnet is
        full, or the node has no ENI with room and cannot add one."""
        with self._idx_lock:
            self._waiting[claim] = (node, zone)

    def room_found(self, claim: str) -> None:
        """``claim`` waits no more (it got its IP, moved, or is gone)."""
        with self._idx_lock:
            self._waiting.pop(claim, None)

    def waiting_claims(self) -> dict[str, tuple[str, str]]:
        with self._idx_lock:
            return dict(self._waiting)

    def room_appeared(self, *, node: str | None = None, zone: str | None = None) -> int:
        """Queue the claims waiting for room on ``node`` / in ``zone`` (every
        waiting claim when neither is given); how many were queued."""
        with self._idx_lock:
            keys = [
                k
                for k, (n, z) in self._waiting.items()
                if (node is None or n == node) and (zone is None or z == zone)
            ]
        for k in keys:
            self.queue.add(CLAIM + k)
        return len(keys)

    # --- handlers (called by informers) ---
    def on_node(self, key: str, old: NodeRec | None, new: NodeRec | None) -> None:
        self.queue.add(NODE + key)
        if new is None:
            # claims whose IP sat on this node can move now
            for ip in self.node_ips(key):
                if ip.claim:
                    self.queue.add(CLAIM + ip.claim)

    def on_nec(self, key: str, old: NecRec | None, new: NecRec | None) -> None:
        if new is None or old is None or old.annotations != new.annotations:
            self.queue.add(NODE + key)

    def on_pod(self, key: str, old: PodRec | None, new: PodRec | None) -> None:
        self.queue.add(CLAIM + key)

    def on_waiting_pod(self, key: str, old: WaitingPod | None, new: WaitingPod | None) -> None:
        """A pod started or stopped waiting for an IP of its node: the node's
        pool is sized again (``ipamd.rules.pool``)."""
        with self._idx_lock:
            if old is not None and (new is None or old.node != new.node):
                self.waiting_by_node[old.node].discard(key)
                if not self.waiting_by_node[old.node]:
                    del self.waiting_by_node[old.node]
            if new is not None:
                self.waiting_by_node[new.node].add(key)
        for rec in (old, new):
            if rec is not None and self.node(rec.node) is not None:
                self.queue.add(NODE + rec.node)

    def on_ip(self, key: str, old: IpRec | None, new: IpRec | None) -> None:
        with self._idx_lock:
            if old is not None and (new is None or old.node != new.node):
                self.ips_by_node[old.node].discard(key)
                if not self.ips_by_node[old.node]:
                    del self.ips_by_node[old.node]
            if new is not None:
                self.ips_by_node[new.node].add(key)
            if old is not None and old.claim and (new is None or old.claim != new.claim):
                self.ips_by_claim[old.claim].discard(key)
                if not self.ips_by_claim[old.claim]:
                    del self.ips_by_claim[old.claim]
            if new is not None and new.claim:
                self.ips_by_claim[new.claim].add(key)
        for rec in (old, new):
            if rec is None:
                continue
            if rec.node:
                self.queue.add(NODE + rec.node)
            if rec.claim:
                self.queue.add(CLAIM + rec.claim)
        if old is not None and old.node and (new is None or new.node != old.node):
            self.room_appeared(node=old.node)  # an address left the node: room on its ENI

    def on_eni(self, key: str, old: EniRec | None, new: EniRec | None) -> None:
        with self._idx_lock:
            if old is not None and (new is None or old.node != new.node):
                self.enis_by_node[old.node].discard(key)
                if not self.enis_by_node[old.node]:
                    del self.enis_by_node[old.node]
            if new is not None:
                self.enis_by_node[new.node].add(key)
        for rec in (old, new):
            if rec is not None and rec.node:
                self.queue.add(NODE + rec.node)
        if new is not None and new.node and _newly_attached(old, new):
            self.room_appeared(node=new.node)  # an ENI attached: room on it
        if old is not None and old.node and (new is None or new.node != old.node):
            self.room_appeared(node=old.node)  # an ENI gone: a slot for a new one

    def on_claim(self, key: str, old: ClaimRec | None, new: ClaimRec | None) -> None:
        self.queue.add(CLAIM + key)

    # --- reads ---
    def node(self, name: str) -> NodeRec | None:
        return self.nodes.get(name) if self.nodes else None

    def node_alive(self, name: str) -> bool:
        rec = self.node(name)
        return rec is not None and not rec.deleting

    def node_ips(self, node: str) -> list[IpRec]:
        assert self.ips is not None
        with self._idx_lock:
            names = list(self.ips_by_node.get(node, ()))
        out = []
        for n in names:
            rec = self.ips.get(n)
            if rec is not None:
                out.append(rec)
        return out

    def node_enis(self, node: str) -> list[EniRec]:
        assert self.enis is not None
        with self._idx_lock:
            names = list(self.enis_by_node.get(node, ()))
        out = []
        for n in names:
            rec = self.enis.get(n)
            if rec is not None:
                out.append(rec)
        return out

    def awaiting_pods(self, node: str) -> list[WaitingPod]:
        """The pods bound to ``node`` that wait for a dynamic IP."""
        if self.waiting_pods is None:
            return []
        with self._idx_lock:
            keys = list(self.waiting_by_node.get(node, ()))
        return [p for k in keys if (p := self.waiting_pods.get(k)) is not None and p.node == node]

    def ip(self, address: str) -> IpRec | None:
        return self.ips.get(address) if self.ips else None

    def claim_ips(self, key: str) -> list[IpRec]:
        """The VpcIPs whose ``spec.claim`` is ``key`` (normally at most one)."""
        if self.ips is None:
            return []
        with self._idx_lock:
            names = sorted(self.ips_by_claim.get(key, ()))
        return [r for n in names if (r := self.ips.get(n)) is not None and r.claim == key]

    def claim(self, key: str) -> ClaimRec | None:
        return self.claims.get(key) if self.claims else None

    def pod(self, key: str) -> PodRec | None:
        return self.pods.get(key) if self.pods else None

    def subnet(self, subnet_id: str) -> Subnet | None:
        d = self.decision
        if d is None:
            return None
        sid = SubnetId(subnet_id)
        return d.active.get(sid) or d.draining.get(sid)

    def subnet_active(self, subnet_id: str) -> bool:
        d = self.decision
        return d is not None and subnet_id in d.active and subnet_id not in self.exhausted

    def subnet_in_use(self) -> dict[str, int]:
        assert self.enis is not None
        counts: dict[str, int] = defaultdict(int)
        for eni in self.enis.values():
            counts[eni.subnet] += 1
        return counts

    def nodes_with_work(self) -> list[str]:
        with self._idx_lock:
            names = set(self.ips_by_node) | set(self.enis_by_node)
        if self.nodes is not None:
            names |= {k for k, _ in self.nodes.items()}
        return sorted(n for n in names if n)
