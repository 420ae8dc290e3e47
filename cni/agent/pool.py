"""Which pod on this node uses which of the node's IPs: the state and the pure
rules over it (choose, release, cooldown, release grants, usage). No I/O: the
checkpoint module persists ``PoolState``; the handler holds the lock."""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from core.models import (
    IP_PHASE_COOLDOWN,
    IP_PHASE_FREE,
    IP_PHASE_IN_USE,
    IP_PHASE_RELEASED,
    IP_STATE_ASSIGNED,
    IP_STATE_RELEASING,
)

from .ipsource import IpUsage, NodeIp, NodeIpView


@dataclass(slots=True)
class Allocation:
    ip: str
    eni_id: str
    container_id: str
    ifname: str
    netns: str
    host_veth: str
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    claim: str = ""  # "<ns>/<name>" when the IP is a static pod's
    created: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.container_id, self.ifname)

    def to_dict(self) -> dict[str, Any]:
        # every field is a str or a float: a flat copy is what ``asdict`` gives,
        # ~13x cheaper (it runs under the agent's state lock for every
        # checkpoint write: 0.4 ms with 60 pods through ``asdict``)
        return {name: getattr(self, name) for name in _ALLOCATION_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allocation:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


_ALLOCATION_FIELDS = tuple(f.name for f in fields(Allocation))


@dataclass(slots=True)
class PoolState:
    allocations: dict[str, Allocation] = field(default_factory=dict)  # by IP
    cooldown: dict[str, float] = field(default_factory=dict)  # IP -> unix time it ends
    released: set[str] = field(default_factory=set)  # IPs granted back to ipamd
    # why a rebuild from the live links is unfinished ("" when it is not): kept
    # across restarts, so a restart mid-rebuild neither deletes the links it
    # could not explain nor serves ADD (see ``recover``)
    recovering: str = ""
    # not persisted (set from the agent's flags): a cooling IP with at most this
    # many seconds of cooldown left (= --cooldown − --cooldown-floor) may be
    # reused when no other IP is free; 0 = never
    early_reuse: float = 0.0

    def by_container(self, container_id: str, ifname: str) -> Allocation | None:
        return next((a for a in self.allocations.values() if a.key == (container_id, ifname)), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": 1,
            "allocations": [a.to_dict() for a in self.allocations.values()],
            "cooldown": dict(self.cooldown),
            "released": sorted(self.released),
        }
        if self.recovering:  # optional: an older agent ignores it
            out["recovering"] = self.recovering
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolState:
        if data.get("version") != 1:
            raise ValueError(f"checkpoint version {data.get('version')!r} is not 1")
        allocs = [Allocation.from_dict(a) for a in data.get("allocations") or []]
        return cls(
            allocations={a.ip: a for a in allocs},
            cooldown={str(k): float(v) for k, v in (data.get("cooldown") or {}).items()},
            released={str(ip) for ip in data.get("released") or []},
            recovering=str(data.get("recovering") or ""),
        )


def _ip_key(ip: str) -> bytes:
    """Sort key of a dotted quad (network byte order compares numerically)."""
    return socket.inet_aton(ip)


def cooling(state: PoolState, ip: str, now: float) -> bool:
    return state.cooldown.get(ip, 0.0) > now


def past_floor(state: PoolState, ip: str, now: float) -> bool:
    """``ip`` cools down but has rested past the floor (``state.early_reuse``)."""
    until = state.cooldown.get(ip, 0.0)
    return until > now and state.early_reuse > 0 and until - now <= state.early_reuse


def next_cooldown_change(state: PoolState, now: float) -> float | None:
    """The next time (unix) an IP's cooldown, or its floor, ends: its
    reported phase and this node's usable IPs change then by themselves."""
    times: list[float] = []
    for until in state.cooldown.values():
        floor = until - state.early_reuse if state.early_reuse > 0 else until
        times.extend(t for t in (floor, until) if t > now)
    return min(times) if times else None


def next_reusable(state: PoolState, now: float) -> float | None:
    """When (unix) the next cooling IP may be given out again: past its floor
    (``state.early_reuse``), else at its cooldown's end; None if none cools."""
    times = [
        until - state.early_reuse if state.early_reuse > 0 else until
        for until in state.cooldown.values()
        if until > now
    ]
    return max(now, min(times)) if times else None


def choose_dynamic(view: NodeIpView, state: PoolState, now: float) -> NodeIp | None:
    """A warm IP: Assigned, no claim, not used, not cooling down, not granted
    back. "Fewest ENIs": pack onto the ENI with the most IPs in use. When
    there is none, a cooling IP past the floor (``past_floor``), the one
    whose cooldown ends first."""
    known_enis = {e.eni_id for e in view.enis}
    candidates = [
        i
        for i in view.ips
        if i.state == IP_STATE_ASSIGNED
        and not i.claim
        and i.eni_id in known_enis
        and i.ip not in state.allocations
        and i.ip not in state.released
    ]
    free = [i for i in candidates if not cooling(state, i.ip, now)]
    if not free:
        rested = [i for i in candidates if past_floor(state, i.ip, now)]
        if not rested:
            return None
        return min(rested, key=lambda i: (state.cooldown[i.ip], _ip_key(i.ip)))
    in_use = Counter(a.eni_id for a in state.allocations.values())
    return min(free, key=lambda i: (-in_use[i.eni_id], i.eni_id, _ip_key(i.ip)))


def choose_static(
    view: NodeIpView, state: PoolState, claim: str, pod_uid: str
) -> tuple[NodeIp | None, Allocation | None]:
    """The IP ``claim`` reserved on this node, and a stale allocation of the same
    claim holding it (an earlier sandbox of the same pod) to take over.
    (None, None) while ipamd has not moved the IP here yet."""
    known_enis = {e.eni_id for e in view.enis}
    for i in view.ips:
        if i.claim != claim or i.state != IP_STATE_ASSIGNED or i.eni_id not in known_enis:
            continue
        if i.reserved_pod_uid and pod_uid and i.reserved_pod_uid != pod_uid:
            continue
        holder = state.allocations.get(i.ip)
        if holder is not None and holder.claim != claim:
            continue  # never hand one IP to two pods
        return i, holder
    return None, None


def unclaimed(view: NodeIpView, state: PoolState, pod_uid: str) -> bool:
    """The pod ``pod_uid`` (static by its annotations) is dynamic: its claim was
    deleted while it ran (one of this node's IPs carries the durable mark,
    core.models), or an earlier sandbox of it runs with an IP without a claim."""
    if not pod_uid:
        return False
    if any(i.unclaimed_pod_uid == pod_uid for i in view.ips):
        return True
    return any(a.pod_uid == pod_uid and not a.claim for a in state.allocations.values())


def choose_unclaimed(
    view: NodeIpView, state: PoolState, pod_uid: str, host_veth: str, now: float
) -> tuple[NodeIp | None, Allocation | None]:
    """For a pod whose claim was deleted while it ran (``unclaimed``): the
    address it keeps (the IP marked with its UID), taken over from an earlier
    sandbox of the same pod when one still holds it (same UID or same host
    veth; its cooldown does not apply to the pod that used it); a warm IP when
    that address is no longer this node's to give."""
    known_enis = {e.eni_id for e in view.enis}
    for i in view.ips:
        if (
            i.unclaimed_pod_uid != pod_uid
            or i.claim
            or i.state != IP_STATE_ASSIGNED
            or i.eni_id not in known_enis
            or i.ip in state.released
        ):
            continue
        holder = state.allocations.get(i.ip)
        if holder is not None and holder.pod_uid != pod_uid and holder.host_veth != host_veth:
            continue  # another pod took it while this one had no sandbox
        return i, holder
    return choose_dynamic(view, state, now), None


def release(state: PoolState, ip: str, now: float, cooldown: float) -> Allocation | None:
    """Forget the allocation of ``ip``; a dynamic IP cools down before reuse, a
    static one stays reserved for its claim (same pod name, no cooldown)."""
    alloc = state.allocations.pop(ip, None)
    if alloc is not None and not alloc.claim and cooldown > 0:
        state.cooldown[ip] = now + cooldown
    return alloc


def grant_releases(view: NodeIpView, state: PoolState, now: float) -> bool:
    """Apply the release handshake (core.models): an IP ipamd asks back
    (Releasing) that is not used nor cooling down is granted (Released; the
    report echoes the request's ``release_id``, see ``usage``); one that went
    back to Assigned is offered again. Expired cooldowns are dropped. True if
    changed."""
    changed = False
    for i in view.ips:
        if i.state == IP_STATE_RELEASING:
            if (
                i.ip not in state.released
                and i.ip not in state.allocations
                and not cooling(state, i.ip, now)
            ):
                state.released.add(i.ip)
                changed = True
        elif i.ip in state.released:
            state.released.discard(i.ip)
            changed = True
    present = {i.ip for i in view.ips}
    for ip in [ip for ip in state.released if ip not in present]:
        state.released.discard(ip)  # ipamd took it: the handshake is over
        changed = True
    for ip in [ip for ip, until in state.cooldown.items() if until <= now]:
        del state.cooldown[ip]
        changed = True
    return changed


def usage(view: NodeIpView, state: PoolState, now: float) -> list[IpUsage]:
    out: list[IpUsage] = []
    for i in view.ips:
        alloc = state.allocations.get(i.ip)
        if alloc is not None:
            out.append(
                IpUsage(
                    i.ip,
                    IP_PHASE_IN_USE,
                    alloc.pod_namespace,
                    alloc.pod_name,
                    alloc.pod_uid,
                    alloc.container_id,
                )
            )
        elif i.ip in state.released:
            # the grant answers the request open in this same view (its id);
            # nothing to echo when none is open: ipamd never reads that as a grant
            rid = i.release_id if i.state == IP_STATE_RELEASING else ""
            out.append(IpUsage(i.ip, IP_PHASE_RELEASED, release_id=rid))
        elif cooling(state, i.ip, now) and not past_floor(state, i.ip, now):
            out.append(IpUsage(i.ip, IP_PHASE_COOLDOWN, cooldown_until=state.cooldown[i.ip]))
        else:
            out.append(IpUsage(i.ip, IP_PHASE_FREE))
    return out


@dataclass(frozen=True, slots=True)
class PoolCounts:
    total: int
    in_use: int
    cooldown: int
    free: int
    released: int


def counts(view: NodeIpView, state: PoolState, now: float) -> PoolCounts:
    phases = Counter(u.phase for u in usage(view, state, now))
    return PoolCounts(
        total=len(view.ips),
        in_use=phases[IP_PHASE_IN_USE],
        cooldown=phases[IP_PHASE_COOLDOWN],
        free=phases[IP_PHASE_FREE],
        released=phases[IP_PHASE_RELEASED],
    )


IFNAME_MAX = 15  # IFNAMSIZ (16) less the terminating NUL
MIN_VETH_HASH = 8  # hex digits of the pod hash a prefix must leave (32 bits)
_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def host_veth_prefix_error(prefix: str) -> str | None:
    """Why ``prefix`` cannot name host veths, or None. The name is the prefix
    plus a hex hash of the pod cut to 15 characters: a long prefix leaves
    too few digits (at 15, every pod gets the same name) and an empty one
    would make any 15-hex-digit link on the host look like ours."""
    longest = IFNAME_MAX - MIN_VETH_HASH
    if not prefix:
        return "is empty (our links are recognised by it)"
    if len(prefix) > longest:
        return (
            f"{prefix!r} is {len(prefix)} characters: at most {longest}, so that "
            f"{MIN_VETH_HASH} hex digits of the pod hash fit in an interface name "
            f"({IFNAME_MAX} characters)"
        )
    bad = sorted(set(prefix) - _PREFIX_CHARS)
    if bad:
        return f"{prefix!r} has characters {''.join(bad)!r}: use letters, digits, '-', '_', '.'"
    return None


def host_veth_name(
    prefix: str, namespace: str, name: str, container_id: str, ifname: str = "eth0"
) -> str:
    """Deterministic host-side veth name (≤ 15 chars): a hash of the pod's
    namespace/name (and the interface, when it is not eth0), so a retried ADD
    or a recreated StatefulSet pod finds and removes its stale link first; the
    container id when the runtime gave no pod name."""
    import hashlib

    problem = host_veth_prefix_error(prefix)
    if problem is not None:
        raise ValueError(f"host veth prefix {problem}")
    key = f"{namespace}/{name}" if namespace and name else container_id
    if ifname != "eth0":
        key += f"/{ifname}"
    digest = hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[: IFNAME_MAX - len(prefix)]
