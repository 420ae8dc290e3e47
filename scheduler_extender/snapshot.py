"""An immutable view of the cluster state one request is answered from
(pure). The store hands out a new ``Snapshot`` after each change; a request
keeps the one it started with, so every node of one answer is judged against
the same state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from core.models import SUBNET_ACTIVE, SubnetStatus

from .facts import (
    IP_COOLDOWN,
    IP_IN_USE,
    IP_LEAVING,
    IP_RESERVED,
    IP_WARM,
    NO_SUBNET_CONFIG,
    ClaimFacts,
    IpFacts,
    NodeFacts,
    SubnetConfig,
)


@dataclass(slots=True)
class NodeIps:
    """Counts of a node's VpcIPs by category. Never mutated once built (a new
    one replaces it); not frozen only because frozen init is slow."""

    warm: int = 0
    in_use: int = 0
    cooldown: int = 0
    reserved: int = 0
    leaving: int = 0  # asked back by ipamd: its slot is taken until ipamd has it
    # IPs that take one of the node's eni-ip slots and cannot go to a new pod now
    # (core.usable: the node agent counts the same ones)
    occupied: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.occupied = self.in_use + self.cooldown + self.reserved + self.leaving

    def add(self, category: str, sign: int) -> NodeIps:
        return NodeIps(
            self.warm + sign * (category == IP_WARM),
            self.in_use + sign * (category == IP_IN_USE),
            self.cooldown + sign * (category == IP_COOLDOWN),
            self.reserved + sign * (category == IP_RESERVED),
            self.leaving + sign * (category == IP_LEAVING),
        )

    def is_empty(self) -> bool:
        return not (self.warm or self.in_use or self.cooldown or self.reserved or self.leaving)


NO_IPS = NodeIps()


@dataclass(frozen=True, slots=True)
class SubnetView:
    subnet_id: str
    zone: str
    available: int
    total: int
    state: str
    reason: str


@dataclass(frozen=True, slots=True)
class ZonePlan:
    """The configured subnets of one zone, as ipamd validated them."""

    zone: str
    active: tuple[SubnetView, ...]  # usable for new IPs
    unusable: tuple[SubnetView, ...]  # configured, but Invalid / Draining

    @property
    def available(self) -> int:
        return sum(s.available for s in self.active)

    @property
    def free_fraction(self) -> float:
        total = sum(s.total for s in self.active)
        return min(1.0, self.available / total) if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class SubnetPlan:
    """Configured subnets grouped by zone; those ipamd has not validated yet
    (no status) have no known zone."""

    config: SubnetConfig
    zones: Mapping[str, ZonePlan]
    pending: tuple[str, ...]  # configured, no status yet
    by_id: Mapping[str, SubnetView]  # every subnet ipamd reported, configured or not


def subnet_plan(config: SubnetConfig, statuses: tuple[SubnetStatus, ...]) -> SubnetPlan:
    by_id = {s.subnet_id: _view(s) for s in statuses if s.subnet_id}
    active: dict[str, list[SubnetView]] = {}
    unusable: dict[str, list[SubnetView]] = {}
    pending: list[str] = []
    for subnet_id in config.subnet_ids:
        view = by_id.get(subnet_id)
        if view is None or not view.zone:
            pending.append(subnet_id)
        elif view.state == SUBNET_ACTIVE:
            active.setdefault(view.zone, []).append(view)
        else:
            unusable.setdefault(view.zone, []).append(view)
    zones = {
        zone: ZonePlan(zone, tuple(active.get(zone, ())), tuple(unusable.get(zone, ())))
        for zone in sorted(set(active) | set(unusable))
    }
    return SubnetPlan(config, MappingProxyType(zones), tuple(pending), MappingProxyType(by_id))


def _view(s: SubnetStatus) -> SubnetView:
    return SubnetView(s.subnet_id, s.zone, _int(s.available), _int(s.total), s.state, s.reason)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return 0
    try:
        return max(0, int(value))
    except ValueError:
        return 0


EMPTY_PLAN = subnet_plan(NO_SUBNET_CONFIG, ())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one answer reads. Mappings are never mutated after the
    snapshot is handed out (the store copies on write)."""

    generation: int = 0
    nodes: Mapping[str, NodeFacts] = field(default_factory=dict)
    node_ips: Mapping[str, NodeIps] = field(default_factory=dict)
    node_eni_subnets: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ips: Mapping[str, IpFacts] = field(default_factory=dict)
    claims: Mapping[str, ClaimFacts] = field(default_factory=dict)
    # eni-ip owed to pods bound to the node that have no IP yet (store._recount)
    node_awaiting: Mapping[str, int] = field(default_factory=dict)
    plan: SubnetPlan = EMPTY_PLAN
    synced: bool = True
    stale: tuple[str, ...] = ()  # kinds whose watch is down past the stale limit
