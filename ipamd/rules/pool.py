"""Pure: warm-pool sizing and the "fewest ENIs" policy.

A node keeps its dynamic IPs (secondary IPs without a claim) between
``used + awaiting + min_prebind`` and ``used + awaiting + max_prebind``,
capped by what the node can hold for dynamic use, where ``used`` counts IPs
in use or cooling down and ``awaiting`` the IPs owed to pods bound to the
node that wait for one (``ipamd.rules.awaiting``): a pod waiting in CNI ADD
gets its IP also with a warm target of 0, and a burst of pods gets its IPs in
one refill. IPs are added on the ENI with the most IPs in use that
still has room (so ENIs fill up one by one); a new ENI is created only when no
usable ENI has room, in the node-zone subnet with the most free IPs; surplus
is released from the ENI with the fewest IPs in use, one per trim interval
(all of it at once with quick release, ``ipamd.rules.warm.trim_count``);
an ENI with no secondary IP left is deleted.

Whatever the warm targets, a node that can grow keeps room for one more pod
in sight of its device plugin, which counts only the room on *attached* ENIs
(``core.usable``): when its usable ENIs have no room left and none of its
dynamic IPs is idle, the next ENI is attached ahead with no secondary IP
(``needs_ahead_eni``), and that empty ENI is not deleted while the others
stay full, nor for a trim interval after they get room (``keep_ahead``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_IPS_PER_CALL = 10  # AssignPrivateIpAddresses / CreateNetworkInterface limit


@dataclass(frozen=True, slots=True)
class PoolTargets:
    min_prebind: int = 5
    max_prebind: int = 5


@dataclass(frozen=True, slots=True)
class EniView:
    eni_id: str
    subnet_id: str
    capacity: int  # IPs per ENI, primary included
    secondaries: int  # secondary IPs held (dynamic + claimed)
    in_use: int  # secondary IPs used by pods (or reserved for claims)
    usable: bool = True  # attached, and its subnet is active and not exhausted
    on_its_way: bool = False  # being created or attached (phase Creating/Attaching)

    @property
    def room(self) -> int:
        return max(0, self.capacity - 1 - self.secondaries)


@dataclass(frozen=True, slots=True)
class PoolCounts:
    dynamic: int  # dynamic IPs held in state Assigned (any phase)
    used: int  # of those: in use or cooling down
    releasing: int = 0  # dynamic IPs asked back (spec.state Releasing)
    awaiting: int = 0  # IPs owed to pods bound here that hold none yet


def warm_delta(counts: PoolCounts, targets: PoolTargets, max_dynamic: int) -> int:
    """> 0: IPs to add; < 0: surplus that may be released; 0: in range.

    ``max_dynamic``: what the node can still hold for dynamic use
    (capacity minus claimed IPs)."""
    base = counts.used + counts.awaiting
    low = min(base + targets.min_prebind, max_dynamic)
    high = min(base + targets.max_prebind, max_dynamic)
    if counts.dynamic < low:
        return low - counts.dynamic
    if counts.dynamic > high:
        return -(counts.dynamic - high)
    return 0


def may_trim(now: float, surplus_since: float | None, last_trim: float, interval: float) -> bool:
    """Release one surplus IP only when the node has been over its target for a
    whole ``interval`` and nothing was released within the last ``interval``:
    a pool that dips and refills with the pods never flaps (no unassign/assign,
    no ENI delete/create churn)."""
    if surplus_since is None:
        return False
    return now - surplus_since >= interval and now - last_trim >= interval


def plan_adds(enis: Sequence[EniView], want: int) -> list[tuple[str, int]]:
    """(eni_id, count) batches of at most MAX_IPS_PER_CALL, fewest-ENIs order.
    May return less than ``want`` when the usable ENIs are full."""
    plan: list[tuple[str, int]] = []
    left = want
    for eni in sorted(
        (e for e in enis if e.usable and e.room > 0),
        key=lambda e: (-e.in_use, -e.secondaries, e.eni_id),
    ):
        take = min(left, eni.room)
        while take > 0:
            batch = min(take, MAX_IPS_PER_CALL)
            plan.append((eni.eni_id, batch))
            take -= batch
            left -= batch
        if left <= 0:
            break
    return plan


def needs_new_eni(enis: Sequence[EniView], want: int, eni_limit: int) -> bool:
    """Whether to create an ENI: IPs are still wanted after the usable ENIs
    are full, and the instance can take one more (the primary ENI counts)."""
    room = sum(e.room for e in enis if e.usable)
    return want > room and len(enis) + 1 < eni_limit


def needs_ahead_eni(enis: Sequence[EniView], idle: int, eni_limit: int, can_grow: bool) -> bool:
    """Whether to attach the next ENI ahead, with no secondary IP, whatever
    the warm targets: the node can grow (``can_grow``: a usable subnet of its
    zone has free IPs), none of its usable ENIs has room left, none of its
    dynamic IPs is ``idle`` (free, cooling down or being asked back: a warm IP
    or room to come), no ENI is on its way, and the instance can take one more
    (the primary ENI counts). Otherwise the device plugin, which counts the
    room of attached ENIs only, would advertise nothing usable and no pod
    could come to ask for the IP that makes ipamd grow the node (a node with
    no ENI yet included)."""
    if not can_grow or idle > 0 or any(e.on_its_way for e in enis):
        return False
    if any(e.usable and e.room > 0 for e in enis):
        return False
    return len(enis) + 1 < eni_limit


@dataclass(frozen=True, slots=True)
class Ahead:
    """The empty ENI kept ahead on a node; ``room_since``: when the node's
    other ENIs got room (None: they are full)."""

    eni_id: str
    room_since: float | None = None


def keep_ahead(
    enis: Sequence[EniView],
    can_grow: bool,
    prev: Ahead | None,
    now: float,
    interval: float,
) -> Ahead | None:
    """The empty ENI ``delete_empty_enis`` must spare (None: spare none).

    While the node can grow and its usable ENIs holding IPs have no room left,
    one usable ENI with no secondary IP is kept: ``prev``'s if it is still
    one, else the lowest id (any other empty ENI goes, as before). Once those
    ENIs have room again, the ENI kept so far stays for ``interval`` more (the
    trim interval): a node whose pods come and go at the edge of a full ENI
    does not delete and re-create an ENI each time."""
    if not can_grow:
        return None
    empty = sorted(e.eni_id for e in enis if e.usable and e.secondaries == 0)
    if not empty:
        return None
    others_full = not any(e.usable and e.room > 0 for e in enis if e.secondaries > 0)
    if others_full:
        keep = prev.eni_id if prev is not None and prev.eni_id in empty else empty[0]
        return Ahead(keep)
    if prev is None or prev.eni_id not in empty:
        return None
    since = prev.room_since if prev.room_since is not None else now
    if now - since >= interval:
        return None
    return Ahead(prev.eni_id, since)


def choose_subnet(candidates: Iterable[tuple[str, int]]) -> str | None:
    """The subnet with the most free IPs (ties: lowest id); None if all are full."""
    best = sorted((c for c in candidates if c[1] > 0), key=lambda c: (-c[1], c[0]))
    return best[0][0] if best else None


def first_batch(want: int, capacity: int) -> int:
    """Secondary IPs to request with a new ENI."""
    return max(0, min(want, capacity - 1, MAX_IPS_PER_CALL))


@dataclass(frozen=True, slots=True)
class FreeIp:
    address: str
    eni_id: str


def choose_release(free: Sequence[FreeIp], enis: Sequence[EniView]) -> FreeIp | None:
    """A free dynamic IP from the ENI with the fewest IPs in use (drains ENIs
    that are not usable first); ties: the highest address, deterministic."""
    if not free:
        return None
    by_id = {e.eni_id: e for e in enis}

    def key(ip: FreeIp) -> tuple[int, int, int, str]:
        e = by_id.get(ip.eni_id)
        if e is None:
            return (0, 0, 0, ip.address)
        return (1 if e.usable else 0, e.in_use, e.secondaries, ip.address)

    return min(free, key=lambda ip: (key(ip)[0], key(ip)[1], key(ip)[2], _neg(ip.address)))


def _neg(address: str) -> tuple[int, ...]:
    return tuple(-int(p) for p in address.split(".")) if address.count(".") == 3 else (0,)


def empty_enis(enis: Iterable[EniView]) -> list[str]:
    """ENIs that hold no secondary IP: delete them."""
    return sorted(e.eni_id for e in enis if e.secondaries == 0)
