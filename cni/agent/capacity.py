"""What this node can use *now*, as the agent knows it: the IP tally
(``core.usable.IpTally``) it feeds the device plugin (docs/device-plugin.md,
"Usable now"), which applies ``core.usable.healthy_devices`` with the
instance's limit: Healthy devices = IPs in use + usable now.

Pure: the inputs are the agent's view of its node (``NodeIpView``: the
*attached* ENIs with their zone, the IPs with their ``Assigned``/``Releasing``
state and claim), its pool state (allocations, cooldowns, release grants;
``PoolState.early_reuse`` for the cooldown floor) and ipamd's subnet
statuses (ConfigMap ``kube-system/tke-eni-ipamd-status``, key
``subnets.json``; ``None`` when there is none, e.g. with the file IP source).

Every IP of an attached ENI is in one class: in use (an allocation), leaving
(``Releasing``, or granted back), reserved (a claim's, not in use), cooling
(its cooldown runs; past the floor it counts as warm), warm. ``can_grow``:
ipamd can add IPs here — the node has an attached ENI, and ipamd's status
names an ``Active`` subnet of the node's zone with ``available > 0``. The
node's zone is the ``zone`` of its attached ENIs (``VpcENI.spec.zone``); when
no ENI names one, the zones of the subnets whose CIDR an ENI is in. An
unknown (no status, no zone) never reads as "can grow": only warm IPs count.

``attachable``: the secondary IPs ipamd can still assign on the attached ENIs,
each ENI's ``ip_capacity`` (``VpcENI.status.ipCapacity``) less its primary and
every IP record on it (any class); ``None`` when an attached ENI's capacity is
unknown, or no ENI is attached (the node cannot grow then anyway). The room of
ENIs not attached yet is never counted (docs/cni.md, "Device plugin capacity").

``held``: the phase the API holds for each IP (``VpcIP.status.phase`` as the
agent's watch last saw it; ``""`` when none), which is what the scheduler
extender judges headroom from. An IP the agent counts warm is counted warm only
when the API says so too (``Free`` or no phase yet); otherwise it keeps the
class the extender gives that phase (``InUse``: in use, ``Cooldown``: cooling,
anything else: leaving) until the agent's report reaches the API. So a rise of
"usable now" (a cooldown or its floor ends, an IP is freed) reaches the file,
hence the device plugin and the Node's allocatable, only after the API holds
it, never before the extender can see it; a fall (an ADD, a DEL starting a
cooldown, a grant) reaches the file at once, before the API: the file is never
above what the agent knows nor above what the API says. ``None`` (a source that
cannot tell what the API holds): the agent's classes alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from core.capacityfile import CapacityOverrides, render_capacity_file
from core.models import IP_STATE_ASSIGNED, SUBNET_ACTIVE, SubnetStatus
from core.usable import WARM, IpTally, record_class, usable_now

from .ipsource import NodeIpView
from .pool import PoolState

# why ``can_grow`` is what it is (logged, and written as a comment in the file)
REASON_NO_ENI: Final = "no-attached-eni"
REASON_EXHAUSTED: Final = "subnets-exhausted"
REASON_FREE: Final = "subnet-has-free-ips"
REASON_NO_STATUS: Final = "no-subnet-status"
REASON_ZONE_UNKNOWN: Final = "zone-unknown"


@dataclass(frozen=True, slots=True)
class CapacityVerdict:
    tally: IpTally
    reason: str
    zones: tuple[str, ...] = ()
    # unix time a cooldown (or its floor) ends and the tally changes by itself
    next_change: float | None = None
    # IPs the agent counts warm that the API does not hold usable yet (``held``):
    # counted in the API's class until the agent's report lands there
    behind: int = 0

    @property
    def warm(self) -> int:
        """Usable now without a refill (what the agent's metric shows)."""
        return usable_now(self.tally, None)


def node_zones(view: NodeIpView, subnets: Sequence[SubnetStatus]) -> tuple[str, ...]:
    """The zone(s) of the node's attached ENIs; by subnet CIDR when no ENI names one."""
    zones = {e.zone for e in view.enis if e.zone}
    if not zones:
        cidrs = {e.subnet_cidr for e in view.enis if e.subnet_cidr}
        zones = {s.zone for s in subnets if s.zone and s.cidr in cidrs}
    return tuple(sorted(zones))


def can_grow(
    view: NodeIpView, subnets: Sequence[SubnetStatus] | None
) -> tuple[bool, str, tuple[str, ...]]:
    """(ipamd can add IPs to this node, why, the node's zones)."""
    if not view.enis:
        return False, REASON_NO_ENI, ()
    if subnets is None:
        return False, REASON_NO_STATUS, ()
    zones = node_zones(view, subnets)
    if not zones:
        return False, REASON_ZONE_UNKNOWN, ()
    free = any(s.state == SUBNET_ACTIVE and s.zone in zones and s.available > 0 for s in subnets)
    return free, (REASON_FREE if free else REASON_EXHAUSTED), zones


def attachable(view: NodeIpView) -> int | None:
    """The room left on the attached ENIs (see the module doc)."""
    if not view.enis:
        return None
    room: dict[str, int] = {}
    for e in view.enis:
        if e.ip_capacity is None:
            return None
        room[e.eni_id] = e.ip_capacity - 1
    for i in view.ips:
        if i.eni_id in room:
            room[i.eni_id] -= 1
    return sum(max(0, r) for r in room.values())


def held_class(held: Mapping[str, str] | None, ip: str) -> str:
    """``""`` when the API holds ``ip`` usable (or cannot tell), else the
    ``IpTally`` class its phase there means: ``core.usable.record_class``, the
    scheduler extender's reading, of an assigned IP without a claim (those two
    the agent has checked already; see the module doc)."""
    if held is None:
        return ""
    cls = record_class(IP_STATE_ASSIGNED, held.get(ip, ""), False)
    return "" if cls == WARM else cls


def tally(
    view: NodeIpView,
    state: PoolState,
    subnets: Sequence[SubnetStatus] | None,
    now: float,
    held: Mapping[str, str] | None = None,
) -> CapacityVerdict:
    attached = {e.eni_id for e in view.enis}
    counts = {"warm": 0, "in_use": 0, "cooling": 0, "reserved": 0, "leaving": 0}
    behind = 0
    ends: list[float] = []
    for i in view.ips:
        if i.eni_id not in attached or i.ip in state.allocations:
            continue  # allocations are counted below, wherever their IP is
        if i.state != IP_STATE_ASSIGNED or i.ip in state.released:
            counts["leaving"] += 1
            continue
        if i.claim:
            counts["reserved"] += 1
            continue
        if state.cooldown.get(i.ip, 0.0) > now:
            until = state.cooldown[i.ip]
            early = until - state.early_reuse if state.early_reuse > 0 else until
            if early > now:
                counts["cooling"] += 1
                ends.append(early)
                continue
            # past the floor: reusable when nothing else is (pool.choose_dynamic)
            ends.append(until)
        # warm for the agent; warm in the file once the API says so too
        api = held_class(held, i.ip)
        if api:
            behind += 1
        counts[api or "warm"] += 1
    grow, reason, zones = can_grow(view, subnets)
    return CapacityVerdict(
        IpTally(
            len(state.allocations) + counts["in_use"],
            counts["warm"],
            counts["cooling"],
            counts["reserved"],
            counts["leaving"],
            grow,
            attachable(view),
        ),
        reason,
        zones,
        min(ends) if ends else None,
        behind,
    )


def render(verdict: CapacityVerdict) -> str:
    """The capacity file's text (``key = value`` lines, ``#`` comments): the
    tally, and why the node can (not) grow."""
    return render_capacity_file(
        CapacityOverrides(tally=verdict.tally),
        [
            'written by tke-eni-agent (docs/cni.md, "Device plugin capacity")',
            f"reason: {verdict.reason}"
            + (f"; zone(s) {','.join(verdict.zones)}" if verdict.zones else ""),
        ],
    )
