"""Folds watch events into snapshots (no I/O).

Writers (one watch thread per kind) call ``replace`` after a list and
``apply`` per watch event; readers (request threads) call ``snapshot``.
Copy-on-write: a snapshot shares the store's dicts; the first write after a
snapshot was taken copies the dict it touches, so taking a snapshot is O(1)
and a burst of events between two requests costs one copy at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from core.models import SUBNET_STATUS_CONFIGMAP, SUBNET_STATUS_KEY
from core.names import CONFIGMAP_NAME

from .facts import (
    IP_IN_USE,
    BoundPod,
    ClaimFacts,
    EniFacts,
    IpFacts,
    NodeFacts,
    claim_facts,
    eni_facts,
    ip_facts,
    node_facts,
    subnet_config,
    subnet_statuses,
)
from .pod import bound_pod
from .snapshot import NO_IPS, NodeIps, Snapshot, subnet_plan

KIND_NODES: Final = "nodes"
KIND_VPCIPS: Final = "vpcips"
KIND_VPCENIS: Final = "vpcenis"
KIND_CLAIMS: Final = "vpcipclaims"
KIND_CONFIGMAPS: Final = "configmaps"
KIND_PODS: Final = "pods"  # bound, still Pending (watch.py's field selector)
KINDS: Final = (KIND_NODES, KIND_VPCIPS, KIND_VPCENIS, KIND_CLAIMS, KIND_CONFIGMAPS, KIND_PODS)

ADDED: Final = "ADDED"
MODIFIED: Final = "MODIFIED"
DELETED: Final = "DELETED"


@dataclass(slots=True)
class KindState:
    synced: bool = False  # listed at least once
    up: bool = False  # watch connected now
    down_since: float = 0.0  # monotonic time the watch went down (0: up)
    objects: int = 0
    last_event: float = 0.0  # wall-clock time of the last list/event


class Store:
    def __init__(
        self,
        *,
        config_map: str = CONFIGMAP_NAME,
        status_map: str = SUBNET_STATUS_CONFIGMAP,
        status_key: str = SUBNET_STATUS_KEY,
        stale_after: float = 30.0,
        kinds: Iterable[str] = KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._config_map = config_map
        self._status_map = status_map
        self._status_key = status_key
        self._stale_after = stale_after
        self._clock = clock
        self.kinds: dict[str, KindState] = {k: KindState() for k in kinds}
        self._nodes: dict[str, NodeFacts] = {}
        self._ips: dict[str, IpFacts] = {}
        self._node_ips: dict[str, NodeIps] = {}
        self._enis: dict[str, EniFacts] = {}
        self._node_enis: dict[str, dict[str, EniFacts]] = {}  # private, never shared
        self._node_eni_subnets: dict[str, frozenset[str]] = {}
        self._claims: dict[str, ClaimFacts] = {}
        self._maps: dict[str, dict[str, Any]] = {}  # private: the two ConfigMaps
        # Pods bound to a node with no IP yet (see ``_recount``); all private but
        # ``_node_awaiting``, the eni-ip each node owes them (shared, copy on write)
        self._pods: dict[str, BoundPod] = {}  # uid → pod
        self._static_uid: dict[str, str] = {}  # "<ns>/<name>" → uid, static pods only
        self._ip_users: dict[str, int] = {}  # pod uid → VpcIPs in use by it
        self._claim_node: dict[str, str] = {}  # claim key → node of a VpcIP it holds
        self._counted: dict[str, tuple[str, int]] = {}  # uid → (node, eni-ip) counted
        self._node_awaiting: dict[str, int] = {}
        self._plan = subnet_plan(subnet_config(None), ())
        self._shared: set[str] = set()
        self._generation = 0
        self._snapshot: Snapshot | None = None

    # --- writers -------------------------------------------------------
    def replace(self, kind: str, objects: list[dict[str, Any]]) -> None:
        """The full list of a kind (after a list or re-list)."""
        handler = self._handler(kind)
        with self._lock:
            count = handler(objects, None)
            state = self.kinds[kind]
            state.synced = True
            state.objects = count
            state.last_event = time.time()
            self._changed()

    def apply(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        """One watch event (ADDED / MODIFIED / DELETED)."""
        handler = self._handler(kind)
        with self._lock:
            count = handler([obj], event)
            state = self.kinds[kind]
            state.objects = count
            state.last_event = time.time()
            self._changed()

    def _handler(self, kind: str) -> Callable[[list[dict[str, Any]], str | None], int]:
        handlers = {
            KIND_NODES: self._nodes_in,
            KIND_VPCIPS: self._ips_in,
            KIND_VPCENIS: self._enis_in,
            KIND_CLAIMS: self._claims_in,
            KIND_CONFIGMAPS: self._maps_in,
            KIND_PODS: self._pods_in,
        }
        if kind not in handlers or kind not in self.kinds:
            raise ValueError(f"unknown kind {kind!r}")
        return handlers[kind]

    # Each ``*_in`` takes a full list (event None) or one event's object, runs
    # with the lock held and returns the kind's object count.
    def _nodes_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        self._own("_nodes")
        if event is None:
            self._nodes.clear()
        for obj in objects:
            facts = node_facts(obj)
            if event == DELETED:
                self._nodes.pop(facts.name, None)
            else:
                self._nodes[facts.name] = facts
        return len(self._nodes)

    def _ips_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        self._own("_ips")
        self._own("_node_ips")
        self._own("_node_awaiting")
        if event is None:
            self._ips.clear()
            self._node_ips.clear()
            self._ip_users.clear()
            self._claim_node.clear()
        for obj in objects:
            ip = ip_facts(obj)
            self._drop_ip(ip.ip)
            if event != DELETED:
                self._put_ip(ip)
        if event is None:
            for uid in list(self._pods):
                self._recount(uid)
        return len(self._ips)

    def _enis_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        self._own("_node_eni_subnets")
        if event is None:
            self._enis, self._node_enis = {}, {}
            self._node_eni_subnets.clear()
        for obj in objects:
            eni = eni_facts(obj)
            self._drop_eni(eni.eni_id)
            if event != DELETED:
                self._put_eni(eni)
        return len(self._enis)

    def _claims_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        self._own("_claims")
        if event is None:
            self._claims.clear()
        for obj in objects:
            claim = claim_facts(obj)
            if event == DELETED:
                self._claims.pop(claim.key, None)
            else:
                self._claims[claim.key] = claim
        return len(self._claims)

    def _maps_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        if event is None:
            self._maps = {}
        for obj in objects:
            if event == DELETED:
                self._maps.pop(_name(obj), None)
            else:
                self._maps[_name(obj)] = obj
        self._replan()
        return len(self._maps)

    def _pods_in(self, objects: list[dict[str, Any]], event: str | None) -> int:
        self._own("_node_awaiting")
        if event is None:
            self._pods.clear()
            self._static_uid.clear()
            self._counted.clear()
            self._node_awaiting.clear()
        for obj in objects:
            pod = None if event == DELETED else bound_pod(obj)
            uid = pod.uid if pod is not None else _uid(obj)
            old = self._pods.pop(uid, None)
            if old is not None and old.static:
                self._static_uid.pop(old.key, None)
            if pod is not None:
                self._pods[uid] = pod
                if pod.static:
                    self._static_uid[pod.key] = uid
            self._recount(uid)
        return len(self._pods)

    def watch_up(self, kind: str) -> None:
        with self._lock:
            state = self.kinds[kind]
            state.up, state.down_since = True, 0.0

    def watch_down(self, kind: str) -> None:
        with self._lock:
            state = self.kinds[kind]
            if state.up or not state.down_since:
                state.down_since = self._clock()
            state.up = False

    # --- readers -------------------------------------------------------
    def snapshot(self) -> Snapshot:
        with self._lock:
            stale = self._stale()
            snap = self._snapshot
            if snap is None:
                snap = Snapshot(
                    generation=self._generation,
                    nodes=self._nodes,
                    node_ips=self._node_ips,
                    node_eni_subnets=self._node_eni_subnets,
                    ips=self._ips,
                    claims=self._claims,
                    node_awaiting=self._node_awaiting,
                    plan=self._plan,
                    synced=all(s.synced for s in self.kinds.values()),
                    stale=stale,
                )
                self._shared = {
                    "_nodes", "_node_ips", "_node_eni_subnets", "_ips", "_claims", "_node_awaiting"
                }
                self._snapshot = snap
            elif snap.stale != stale:
                snap = self._snapshot = replace(snap, stale=stale)
            return snap

    def synced(self) -> bool:
        with self._lock:
            return all(s.synced for s in self.kinds.values())

    def kind_states(self) -> dict[str, KindState]:
        with self._lock:
            return {k: replace(v) for k, v in self.kinds.items()}

    def stale_kinds(self) -> tuple[str, ...]:
        with self._lock:
            return self._stale()

    # --- internals (lock held) -----------------------------------------
    def _stale(self) -> tuple[str, ...]:
        now = self._clock()
        return tuple(
            kind
            for kind, s in self.kinds.items()
            if s.synced and not s.up and s.down_since and now - s.down_since >= self._stale_after
        )

    def _own(self, attr: str) -> None:
        """Copy a dict a snapshot still shares before writing to it."""
        if attr in self._shared:
            setattr(self, attr, dict(getattr(self, attr)))
            self._shared.discard(attr)

    def _changed(self) -> None:
        self._generation += 1
        self._snapshot = None

    def _put_ip(self, ip: IpFacts) -> None:
        self._ips[ip.ip] = ip
        if ip.node:
            self._node_ips[ip.node] = self._node_ips.get(ip.node, NO_IPS).add(ip.category, 1)
        self._ip_pods(ip, 1)

    def _drop_ip(self, name: str) -> None:
        old = self._ips.pop(name, None)
        if old is None:
            return
        self._ip_pods(old, -1)
        if not old.node:
            return
        counts = self._node_ips.get(old.node, NO_IPS).add(old.category, -1)
        if counts.is_empty():
            self._node_ips.pop(old.node, None)
        else:
            self._node_ips[old.node] = counts

    def _ip_pods(self, ip: IpFacts, sign: int) -> None:
        """Keep the indices that tell whether a bound pod has its IP, and
        recount the pod a VpcIP names (by its UID, or by its claim)."""
        if ip.pod_uid and ip.category == IP_IN_USE:
            n = self._ip_users.get(ip.pod_uid, 0) + sign
            if n > 0:
                self._ip_users[ip.pod_uid] = n
            else:
                self._ip_users.pop(ip.pod_uid, None)
            self._recount(ip.pod_uid)
        if ip.claim:
            if sign > 0 and ip.node:
                self._claim_node[ip.claim] = ip.node
            elif sign < 0 and self._claim_node.get(ip.claim) == ip.node:
                self._claim_node.pop(ip.claim, None)
            uid = self._static_uid.get(ip.claim)
            if uid is not None:
                self._recount(uid)

    def _recount(self, uid: str) -> None:
        """What pod ``uid`` adds to its node's awaiting eni-ip now: while it is
        bound and Pending, its request less the VpcIPs in use by it (those are
        occupied already); nothing for a static pod whose claim's IP is on its
        node (a reserved IP is occupied already). O(1); the caller owns
        ``_node_awaiting``."""
        pod = self._pods.get(uid)
        count = 0
        if pod is not None and not (pod.static and self._claim_node.get(pod.key) == pod.node):
            count = max(0, pod.need - self._ip_users.get(uid, 0))
        old_node, old_count = self._counted.pop(uid, ("", 0))
        if old_count:
            left = self._node_awaiting.get(old_node, 0) - old_count
            if left > 0:
                self._node_awaiting[old_node] = left
            else:
                self._node_awaiting.pop(old_node, None)
        if count and pod is not None:
            self._counted[uid] = (pod.node, count)
            self._node_awaiting[pod.node] = self._node_awaiting.get(pod.node, 0) + count

    def _put_eni(self, eni: EniFacts) -> None:
        self._enis[eni.eni_id] = eni
        if eni.node:
            self._node_enis.setdefault(eni.node, {})[eni.eni_id] = eni
            self._reindex_node_enis(eni.node)

    def _drop_eni(self, eni_id: str) -> None:
        old = self._enis.pop(eni_id, None)
        if old is None or not old.node:
            return
        enis = self._node_enis.get(old.node, {})
        enis.pop(eni_id, None)
        if not enis:
            self._node_enis.pop(old.node, None)
        self._reindex_node_enis(old.node)

    def _reindex_node_enis(self, node: str) -> None:
        subnets = frozenset(
            e.subnet_id for e in self._node_enis.get(node, {}).values() if e.attached
        )
        if subnets:
            self._node_eni_subnets[node] = subnets
        else:
            self._node_eni_subnets.pop(node, None)

    def _replan(self) -> None:
        config = subnet_config(self._maps.get(self._config_map))
        statuses = subnet_statuses(self._maps.get(self._status_map), self._status_key)
        self._plan = subnet_plan(config, statuses)


def _uid(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("uid", "")) if isinstance(meta, dict) else ""


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name", "")) if isinstance(meta, dict) else ""
