"""How many ENI IPs this node can use *now*: the ``usable_ips`` the agent
feeds the device plugin (docs/device-plugin.md, "Dynamic capacity"), which
lowers the ``Healthy`` devices (allocatable) below the limits-derived
capacity ``(ENIs − 1) × (IPs per ENI − 1)``.

Pure: the inputs are the agent's view of its node (``NodeIpView``: the
*attached* ENIs with their zone, the IPs with their ``Assigned``/``Releasing``
state) and ipamd's subnet statuses (ConfigMap
``kube-system/tke-eni-ipamd-status``, key ``subnets.json``; ``None`` when
there is none, e.g. with the file IP source). The rule:

1. no attached ENI (ipamd gave the node nothing: no subnet in its zone, not
   joined yet) → ``0``;
2. else, when ipamd's status is known and no ``Active`` subnet of the node's
   zone has ``available > 0`` (exhausted: ipamd can add no IP) → the number
   of IPs the node holds (``Assigned`` on an attached ENI; ``Releasing`` ones
   are on their way back);
3. else → no limit (``None``: the key is left out of the capacity file, so the
   device plugin advertises its limits-derived maximum).

The node's zone is the ``zone`` of its attached ENIs (``VpcENI.spec.zone``);
when no ENI names one, the zones of the subnets whose CIDR an ENI is in. When
it is still unknown, or there is no status, nothing is lowered (rule 3): an
unknown is never read as "exhausted".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from core.capacityfile import CapacityOverrides, render_capacity_file
from core.models import IP_STATE_ASSIGNED, SUBNET_ACTIVE, SubnetStatus

from .ipsource import NodeIpView

# why the verdict is what it is (logged, and written as a comment in the file)
REASON_NO_ENI: Final = "no-attached-eni"
REASON_EXHAUSTED: Final = "subnets-exhausted"
REASON_FREE: Final = "subnet-has-free-ips"
REASON_NO_STATUS: Final = "no-subnet-status"
REASON_ZONE_UNKNOWN: Final = "zone-unknown"


@dataclass(frozen=True, slots=True)
class CapacityVerdict:
    usable_ips: int | None  # None = no limit from the agent
    reason: str
    zones: tuple[str, ...] = ()
    held: int = 0  # Assigned IPs on attached ENIs


def node_zones(view: NodeIpView, subnets: Sequence[SubnetStatus]) -> tuple[str, ...]:
    """The zone(s) of the node's attached ENIs; by subnet CIDR when no ENI names one."""
    zones = {e.zone for e in view.enis if e.zone}
    if not zones:
        cidrs = {e.subnet_cidr for e in view.enis if e.subnet_cidr}
        zones = {s.zone for s in subnets if s.zone and s.cidr in cidrs}
    return tuple(sorted(zones))


def held_ips(view: NodeIpView) -> int:
    """IPs the node holds: ``Assigned`` (not ``Releasing``) on an attached ENI."""
    attached = {e.eni_id for e in view.enis}
    return sum(1 for i in view.ips if i.state == IP_STATE_ASSIGNED and i.eni_id in attached)


def usable_ips(view: NodeIpView, subnets: Sequence[SubnetStatus] | None) -> CapacityVerdict:
    if not view.enis:
        return CapacityVerdict(0, REASON_NO_ENI)
    held = held_ips(view)
    if subnets is None:
        return CapacityVerdict(None, REASON_NO_STATUS, held=held)
    zones = node_zones(view, subnets)
    if not zones:
        return CapacityVerdict(None, REASON_ZONE_UNKNOWN, held=held)
    free = any(s.state == SUBNET_ACTIVE and s.zone in zones and s.available > 0 for s in subnets)
    if free:
        return CapacityVerdict(None, REASON_FREE, zones, held)
    return CapacityVerdict(held, REASON_EXHAUSTED, zones, held)


def render(verdict: CapacityVerdict) -> str:
    """The capacity file's text (``key = value`` lines, ``#`` comments). It
    changes only when the verdict does (the held count is not in a comment),
    so the file is not rewritten on every pod start."""
    return render_capacity_file(
        CapacityOverrides(usable_ips=verdict.usable_ips),
        [
            'written by tke-eni-agent (docs/cni.md, "Device plugin capacity")',
            f"reason: {verdict.reason}"
            + (f"; zone(s) {','.join(verdict.zones)}" if verdict.zones else ""),
        ],
    )
