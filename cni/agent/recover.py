"""Rebuilding the allocations from the live links when the checkpoint could
not be read (or is missing): the node's running pods must keep their
network and their IPs must never be handed out a second time.

What a live pod link tells, without the checkpoint:

- the IP: the host route ``<ip>/32 dev <veth>``, and the veth's MAC, which
  the agent derives from the veth name and the IP (``podnet.veth_mac``);
- the ENI: the rule ``from <ip> lookup <ENI table>`` (else the IP's VpcIP);
- the pod's netns and interface: the veth peer (found by its index and its
  derived MAC) in a named netns.

Not told: the container id. A rebuilt allocation has none; the runtime's
DEL, CHECK or retried ADD of the same sandbox (same netns, same veth name)
adopts it. Until every live pod link is accounted for, ADD of a new pod
is refused (``Recovery.blocking``): an unexplained link may hold any IP."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from core.models import IP_PHASE_COOLDOWN, parse_rfc3339

from .dataplane.podnet import PRIO_FROM_POD, veth_mac
from .held import held_status
from .pool import Allocation, host_veth_name

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger(__name__)
NO_CHECKPOINT = "there was no checkpoint"  # a first start, usually: nothing to say


def explain_ip(
    name: str, index: int, mac: str, routes: set[tuple[str, int]], candidates: Iterable[str]
) -> str | None:
    """The IP the host veth ``name`` (``index``, ``mac``) serves: its one /32
    route (the one whose derived MAC matches, when there are several), else
    the candidate whose derived MAC is the link's (an ADD stopped before the
    route). None when nothing says."""
    routed = sorted(dst for dst, oif in routes if oif == index)
    if len(routed) == 1:
        return routed[0]
    by_mac = [ip for ip in routed or candidates if veth_mac(name, ip, "host") == mac]
    return by_mac[0] if len(by_mac) == 1 else None


class Recovery:
    """Whether the agent is rebuilding its state from the live links, and
    which live pod links it could not account for (they block ADD)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = False
        self.reason = ""
        self.unexplained: dict[str, str] = {}  # host veth -> why
        self.adopted = 0  # allocations rebuilt so far
        self.cooldowns_restored = False

    def begin(self, reason: str) -> None:
        """Rebuild from the live links, beginning with the next reconcile pass
        (the caller also records ``reason`` in ``PoolState.recovering``)."""
        with self._lock:
            self.active = True
            self.reason = reason

    def settle(self, unexplained: dict[str, str]) -> bool:
        """Record one pass's unexplained links; True when recovery just ended."""
        with self._lock:
            self.unexplained = dict(unexplained)
            if self.active and not unexplained:
                self.active = False
                return True
            return False

    def blocking(self) -> str:
        """Why ADD of a new pod is refused now; "" when it is not."""
        with self._lock:
            if not self.active:
                return ""
            if not self.unexplained:
                return f"the agent is rebuilding its state from the live links ({self.reason})"
            shown = sorted(self.unexplained.items())[:3]
            more = len(self.unexplained) - len(shown)
            links = "; ".join(f"{veth}: {why}" for veth, why in shown)
            return (
                f"{len(self.unexplained)} live pod link(s) not accounted for since "
                f"{self.reason} ({links}{f'; {more} more' if more > 0 else ''}): "
                "ADD is refused so that no IP is given twice"
            )


def rebuild_allocations(a: Agent) -> None:
    """One recovery pass (the reconcile loop runs it while recovery is active):
    adopt every live pod link of ours that no allocation covers and that the
    links explain; record the rest as unexplained."""
    prefix = a.settings.host_veth_prefix
    links = a.net.host_veth_macs(prefix)
    routes = a.net.host_routes32()
    rules = a.net.rules()
    view = a.source.view()
    tables = {link.table: eni_id for eni_id, link in a.eni_links.items()}
    from_rules = {
        ip: table for prio, way, ip, table in rules if prio == PRIO_FROM_POD and way == "from"
    }
    candidates = sorted({i.ip for i in view.ips} | set(from_rules) | {dst for dst, _ in routes})
    held = held_status(a.source) or {}
    if not a.recovery.cooldowns_restored:
        _restore_cooldowns(a, held)
    with a.lock:
        covered = {x.host_veth for x in a.state.allocations.values()}
        holders = {ip: x.host_veth for ip, x in a.state.allocations.items()}
    unexplained: dict[str, str] = {}
    adopted: list[Allocation] = []
    ends = a.net.pod_ends() if set(links) - covered else {}
    for name, (index, mac, peer) in sorted(links.items()):
        if name in covered:
            continue
        ip = explain_ip(name, index, mac, routes, candidates)
        if ip is None:
            unexplained[name] = "no host route, and its MAC names none of the node's IPs"
            continue
        if ip in holders:
            unexplained[name] = f"its IP {ip} is held by {holders[ip]}"
            continue
        node_ip = view.ip(ip)
        eni_id = tables.get(from_rules.get(ip, -1)) or (node_ip.eni_id if node_ip else "")
        netns, ifname = ends.get((index, peer, veth_mac(name, ip, "pod")), ("", "eth0"))
        claim = node_ip.claim if node_ip else ""
        namespace, pod_name, pod_uid = _pod_of(name, ifname, prefix, claim, held.get(ip) or {})
        alloc = Allocation(
            ip=ip,
            eni_id=eni_id,
            container_id="",
            ifname=ifname,
            netns=netns,
            host_veth=name,
            pod_namespace=namespace,
            pod_name=pod_name,
            pod_uid=pod_uid,
            claim=claim,
            created=time.time(),
        )
        holders[ip] = name
        adopted.append(alloc)
    _record(a, adopted, unexplained)


def cooldown_end(status: dict[str, Any], now: float) -> float | None:
    """When a Cooldown status says its IP may be reused (unix time), if later
    than ``now``: ``cooldownUntil`` is RFC 3339 in ``VpcIP.status``, a number
    in the file source's status."""
    if status.get("phase") != IP_PHASE_COOLDOWN:
        return None
    raw = status.get("cooldownUntil")
    if isinstance(raw, int | float):
        until = float(raw)
    elif isinstance(raw, str) and (parsed := parse_rfc3339(raw)) is not None:
        until = parsed.timestamp()
    else:
        return None
    return until if until > now else None


def _restore_cooldowns(a: Agent, held: dict[str, dict[str, Any]]) -> None:
    """Cooldowns are not on the links; the status the API holds still says
    which IPs were released lately and until when they must rest."""
    now = time.time()
    restored = 0
    with a.lock:
        for ip, status in held.items():
            until = cooldown_end(status, now)
            if until is not None and ip not in a.state.allocations:
                a.state.cooldown[ip] = max(a.state.cooldown.get(ip, 0.0), until)
                restored += 1
        a.recovery.cooldowns_restored = True
    if restored:
        log.warning("cooldowns restored from the reported status", extra={"ips": restored})


def _pod_of(
    veth: str, ifname: str, prefix: str, claim: str, status: dict[str, Any]
) -> tuple[str, str, str]:
    """(namespace, name, uid) of the pod a live link serves, when the IP's
    claim or its last reported status names a pod whose veth name is this
    link's (the name is a hash of the pod); else empty. Never the container
    id: a status can be one sandbox late."""
    namespace, _, name = claim.partition("/")
    if claim and host_veth_name(prefix, namespace, name, "", ifname) == veth:
        return namespace, name, ""
    namespace = str(status.get("podNamespace") or "")
    name = str(status.get("podName") or "")
    if namespace and name and host_veth_name(prefix, namespace, name, "", ifname) == veth:
        return namespace, name, str(status.get("podUid") or "")
    return "", "", ""


def _record(a: Agent, adopted: list[Allocation], unexplained: dict[str, str]) -> None:
    """Install the adopted allocations (durably), say what happened."""
    seq = 0
    with a.lock:
        for alloc in adopted:
            if alloc.ip not in a.state.allocations:
                a.state.allocations[alloc.ip] = alloc
                seq = a.checkpoint.mark()
        finished = not unexplained
        if a.state.recovering != ("" if finished else a.recovery.reason):
            a.state.recovering = "" if finished else a.recovery.reason
            seq = a.checkpoint.mark()
    for alloc in adopted:
        a.metrics.recovered.inc()
        log.warning(
            "allocation rebuilt from live links",
            extra={
                "ip": alloc.ip,
                "veth": alloc.host_veth,
                "eni": alloc.eni_id,
                "netns": alloc.netns or "(not found)",
                "claim": alloc.claim,
            },
        )
    if seq:
        a.checkpoint.wait(seq)
        a.on_change()
    a.metrics.unexplained.set(len(unexplained))
    a.recovery.adopted += len(adopted)
    before = set(a.recovery.unexplained)
    if a.recovery.settle(unexplained):
        if a.recovery.adopted or before or a.recovery.reason != NO_CHECKPOINT:
            log.warning(
                "recovery from the live links complete: ADD served again",
                extra={"adopted": a.recovery.adopted, "reason": a.recovery.reason},
            )
            a.events(
                "Normal",
                "PodStateRebuilt",
                f"tke-eni-agent rebuilt {a.recovery.adopted} pod allocation(s) from the live "
                f"links ({a.recovery.reason}); every live pod link is accounted for, ADD is "
                "served again",
            )
    elif set(unexplained) != before:  # said once per change, the gauge says it always
        for name, why in unexplained.items():
            log.error(
                "live pod link not accounted for: kept, ADD refused",
                extra={"veth": name, "why": why},
            )
        a.events("Warning", "PodLinksUnexplained", a.recovery.blocking())
