"""Pure: what a node can use *now* — the one rule the device plugin (its
``Healthy`` devices, the node's allocatable ``eni-ip``) and the scheduler
extender (its headroom check) both apply, each to its own view of the same
counts (docs/device-plugin.md, "Usable now").

A node's secondary IPs fall in exactly one class:

- ``in_use``: a pod has it;
- ``cooling``: released by a pod, resting before reuse (the agent's
  ``--cooldown``); one past the agent's ``--cooldown-floor`` counts as
  ``warm`` instead (the agent reports it ``Free``);
- ``reserved``: held for a static pod's claim, no pod has it: never usable
  by another pod;
- ``leaving``: being given back to ipamd (``Releasing``/``Released``);
- ``warm``: none of the above — a new pod can get it now.

``attachable``: the secondary IPs ipamd can still assign on the ENIs already
attached to the node (each ENI's capacity less its primary and the IPs it
holds); ``None`` when unknown (an ENI's capacity not reported).

``limit`` is the instance's bound on secondary IPs, ``(ENIs − 1) × (IPs per
ENI − 1)`` (``core.limits``). ``can_grow``: ipamd can add IPs to this node
(an ``Active`` subnet of its zone has free IPs); the room left on the
attached ENIs then counts as usable too, because the agent's ADD waits
(bounded) for ipamd's assignment instead of failing the sandbox (docs/cni.md,
"Waiting for the refill"). The room of ENIs not yet created or attached does
not: creating and attaching one takes seconds to tens of seconds, longer than
that wait on a slow cloud (a just-joined node would advertise its whole limit
when its first ENI attaches)::

    occupied   = in_use + cooling + reserved + leaving
    usable_now = max(0, min(warm + attachable, limit − occupied))  if can_grow
               = max(0, min(warm, limit − occupied))               otherwise
    healthy    = in_use + usable_now                               (≤ limit)

(``attachable`` unknown: ``limit − occupied`` when ``can_grow``.) So IPs
cooling down or reserved for another pod's claim are never usable now,
whatever the subnet; with no limit known only ``warm`` counts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from core.models import IP_PHASE_COOLDOWN, IP_PHASE_FREE, IP_PHASE_IN_USE, IP_STATE_ASSIGNED

# The classes, named as ``IpTally``'s fields.
WARM, IN_USE, COOLING, RESERVED, LEAVING = "warm", "in_use", "cooling", "reserved", "leaving"


def record_class(state: str, phase: str, claimed: bool) -> str:
    """The class the API's record of an IP puts it in (``VpcIP.spec.state``,
    ``status.phase``, whether ``spec.claim`` is set): the one reading the
    scheduler extender judges headroom by and the agent's capacity file waits
    for before it counts an IP warm (docs/cni.md, "Rises wait for the API")."""
    if phase == IP_PHASE_IN_USE:
        return IN_USE
    if phase == IP_PHASE_COOLDOWN:
        return COOLING
    if state != IP_STATE_ASSIGNED or phase not in (IP_PHASE_FREE, ""):
        return LEAVING  # Releasing / Released (or a phase we do not know)
    return RESERVED if claimed else WARM


@dataclass(frozen=True, slots=True)
class IpTally:
    """A node's secondary IPs by class (see the module doc)."""

    in_use: int = 0
    warm: int = 0
    cooling: int = 0
    reserved: int = 0
    leaving: int = 0
    can_grow: bool = False
    attachable: int | None = None  # room left on the attached ENIs; None: unknown

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "can_grow" and value is not None and value < 0:
                raise ValueError(f"IpTally.{f.name} must be >= 0, got {value}")

    @property
    def occupied(self) -> int:
        """IPs that take a slot under the limit and no new pod can get."""
        return self.in_use + self.cooling + self.reserved + self.leaving


def usable_now(tally: IpTally, limit: int | None) -> int:
    """How many more pods this node can give an IP to now (see the module doc)."""
    return usable_from(tally.warm, tally.occupied, tally.can_grow, limit, tally.attachable)


def usable_from(
    warm: int, occupied: int, can_grow: bool, limit: int | None, attachable: int | None = None
) -> int:
    """``usable_now`` from the counts alone (no object: the scheduler
    extender's per-node hot path)."""
    # conditionals, not max()/min(): this runs per candidate node per filter call
    if limit is None:
        return warm
    room = limit - occupied if limit > occupied else 0
    if not can_grow:
        return warm if warm < room else room
    if attachable is None:
        return room
    reachable = warm + attachable
    return reachable if reachable < room else room


def healthy_devices(tally: IpTally, limit: int | None) -> int:
    """The device plugin's ``Healthy`` count: the pods that have an IP plus
    those that can get one now, never above ``limit``."""
    healthy = tally.in_use + usable_now(tally, limit)
    return healthy if limit is None else min(limit, healthy)


def has_headroom(tally: IpTally, limit: int | None, need: int, own_reserved: int = 0) -> bool:
    """Whether a pod needing ``need`` IPs fits; ``own_reserved``: IPs already
    reserved on this node for the pod's own claim (it needs no new slot)."""
    return need - own_reserved <= usable_now(tally, limit)
