"""The scheduling rules, as pure functions over a ``Snapshot``.

Filter, per candidate node, first failing rule wins:

1. the node is unknown to the cache → failed (resolvable: the watch catches up);
2. the pod requests no eni-ip → passes (nothing to check);
3. static pod (delete policy Never, its VpcIPClaim holds an IP): the node must
   be in the IP's zone → else unresolvable; the subnet rules are skipped (the
   IP is already held);
4. otherwise the node's zone (topology label, legacy label as fallback):
   no label → unresolvable; no subnet configured → unresolvable; subnets
   configured but not validated by ipamd yet → failed; only Invalid subnets
   → unresolvable; no free IP in the zone's Active subnets and no warm IP on
   the node → failed;
5. ENI headroom: what the node can use now (``core.usable``, the rule the
   device plugin applies too: warm IPs, or the room under the eni-ip
   capacity left by IPs in use, cooling down, reserved for static claims or
   leaving while the zone's subnets have free IPs) must cover the pod's
   request; a static pod's IP already on the node needs no new slot → else
   failed.

Reasons are phrased so the scheduler's summary ("0/6 nodes are available:
3 <reason>, ...") reads well: they never name the node, so equal reasons add up.

Prioritize (0..10): a static pod's own IP on the node 10; an ENI of the
claim's subnet 8; other nodes of the zone 4. An ordinary pod: warm IP on the
node 6 + round(4 × free fraction of the zone's subnets), else round(5 × free
fraction): a warm node always beats a cold one, then emptier subnets win.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.names import (
    CM_SUBNET_ID,
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    RESOURCE_ENI_IP,
    ZONE_LABEL,
)
from core.usable import usable_from

from .facts import ClaimFacts, NodeFacts
from .pod import PodFacts
from .snapshot import NO_IPS, Snapshot, SubnetView, ZonePlan

MAX_SCORE = 10
CONFIGMAP = f"{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
PREFIX = "node(s) rejected by tke-eni-ip-scheduler: "

RESULT_PASSED = "passed"
RESULT_FAILED = "failed"
RESULT_UNRESOLVABLE = "unresolvable"

# reason codes (metric label values); the message carries the details
OK = "ok"
OK_NO_ENI_IP = "no-eni-ip-request"
UNKNOWN_NODE = "unknown-node"
NO_ZONE_LABEL = "no-zone-label"
NO_SUBNET_CONFIG = "no-subnet-config"
ZONE_NO_SUBNET = "zone-no-subnet"
ZONE_SUBNET_UNUSABLE = "zone-subnet-unusable"
SUBNET_NOT_VALIDATED = "subnet-not-validated"
SUBNET_EXHAUSTED = "subnet-exhausted"
STATIC_IP_ZONE = "static-ip-zone"
STATIC_IP_ZONE_UNKNOWN = "static-ip-zone-unknown"
NO_ENI_IP_RESOURCE = "no-eni-ip-resource"
NO_HEADROOM = "no-headroom"


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: a cheap dict key
class Rejection:
    code: str
    message: str
    unresolvable: bool


@dataclass(slots=True)
class FilterDecision:
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (result, code) → nodes
    messages: dict[str, int] = field(default_factory=dict)  # rejection message → nodes
    static_ip: str = ""  # the claimed IP the decision followed, if any


def _reject(code: str, detail: str, *, unresolvable: bool) -> Rejection:
    return Rejection(code, PREFIX + detail, unresolvable)


UNKNOWN = _reject(
    UNKNOWN_NODE, "node not yet in the extender's node cache, retrying", unresolvable=False
)
NO_LABEL = _reject(NO_ZONE_LABEL, f"node has no zone label ({ZONE_LABEL})", unresolvable=True)
NO_RESOURCE = _reject(
    NO_ENI_IP_RESOURCE,
    f"node advertises no {RESOURCE_ENI_IP} (tke-eni-agent device plugin not registered)",
    unresolvable=False,
)


def static_claim(pod: PodFacts, snap: Snapshot) -> ClaimFacts | None:
    """The pod's VpcIPClaim when the pod is static and the claim holds an IP."""
    if not pod.static:
        return None
    claim = snap.claims.get(pod.key)
    return claim if claim is not None and claim.ip else None


def claim_zone(claim: ClaimFacts, snap: Snapshot) -> str:
    if claim.zone:
        return claim.zone
    subnet = snap.plan.by_id.get(claim.subnet_id)
    if subnet is not None and subnet.zone:
        return subnet.zone
    ip = snap.ips.get(claim.ip)
    return ip.zone if ip is not None else ""


def filter_nodes(  # noqa: PLR0912 (one flat loop: the hot path at 15,000 nodes)
    pod: PodFacts,
    names: Sequence[str],
    nodes: Mapping[str, NodeFacts],
    snap: Snapshot,
) -> FilterDecision:
    """Judge each candidate. ``nodes`` gives the node facts: the store's cache
    (NodeNames mode) or the Node objects of the request (Nodes mode).

    Rejections are built once per zone and shared (a reason is the same for
    every node of a zone), so the loop does lookups and comparisons only."""
    out = FilterDecision()
    passed, failed, unresolvable = out.passed, out.failed, out.unresolvable
    counts: dict[Rejection, int] = {}
    get_node, get_ips, get_awaiting = nodes.get, snap.node_ips.get, snap.node_awaiting.get
    if pod.eni_ips <= 0:
        for name in names:
            if name in nodes:
                passed.append(name)
            else:
                failed[name] = UNKNOWN.message
                counts[UNKNOWN] = counts.get(UNKNOWN, 0) + 1
        _count(out, counts, OK_NO_ENI_IP)
        return out
    claim = static_claim(pod, snap)
    if claim is not None:
        out.static_ip = claim.ip
    zone_of_claim = claim_zone(claim, snap) if claim is not None else ""
    claim_node = _claim_node(claim, snap)
    headroom = _no_headroom(claim)
    headroom_bound: Rejection | None = None  # built when a node has bound pods waiting
    need = pod.eni_ips
    zone_rules: dict[str | None, tuple[Rejection | None, bool, Rejection | None]] = {}
    why: Rejection | None
    for name in names:
        node = get_node(name)
        if node is None:
            why = UNKNOWN
        else:
            rule = zone_rules.get(node.zone)
            if rule is None:
                rule = zone_rules[node.zone] = _rule(claim, zone_of_claim, node.zone, snap)
            why, zone_has_free, exhausted = rule
            if why is None:
                ips = get_ips(name, NO_IPS)
                allocatable = node.eni_ip_allocatable
                if not zone_has_free and ips.warm <= 0:
                    why = exhausted
                elif not allocatable:
                    why = NO_RESOURCE
                elif (awaiting := get_awaiting(name, 0)) + need - (name == claim_node) > (
                    usable_from(
                        ips.warm, ips.occupied, zone_has_free, node.eni_ip_capacity or allocatable
                    )
                ):
                    if not awaiting:
                        why = headroom
                    else:
                        why = headroom_bound = headroom_bound or _no_headroom(claim, bound=True)
                else:
                    passed.append(name)
                    continue
        assert why is not None
        (unresolvable if why.unresolvable else failed)[name] = why.message
        counts[why] = counts.get(why, 0) + 1
    _count(out, counts, OK)
    return out


def _count(out: FilterDecision, counts: dict[Rejection, int], ok_code: str) -> None:
    if out.passed:
        out.codes[RESULT_PASSED, ok_code] += len(out.passed)
    for why, n in counts.items():
        result = RESULT_UNRESOLVABLE if why.unresolvable else RESULT_FAILED
        out.codes[result, why.code] += n
        out.messages[why.message] = out.messages.get(why.message, 0) + n


def _rule(
    claim: ClaimFacts | None, zone_of_claim: str, zone: str | None, snap: Snapshot
) -> tuple[Rejection | None, bool, Rejection | None]:
    """(rejection for every node of the zone, whether the zone's subnets have
    free IPs, the rejection for a node of the zone without a warm IP)."""
    if claim is not None:  # the IP is held: subnets do not matter
        return _static_zone_rule(claim, zone_of_claim, zone), True, None
    rejection, has_free = _zone_rule(zone, snap)
    return rejection, has_free, (None if has_free else _exhausted(zone, snap))


def prioritize(
    pod: PodFacts,
    names: Sequence[str],
    nodes: Mapping[str, NodeFacts],
    snap: Snapshot,
) -> list[tuple[str, int]]:
    """A score 0..10 per candidate, in input order."""
    if pod.eni_ips <= 0:
        return [(name, 0) for name in names]
    get_node = nodes.get
    claim = static_claim(pod, snap)
    if claim is not None:
        claim_node = _claim_node(claim, snap)
        with_subnet = snap.node_eni_subnets
        out = []
        for name in names:
            node = get_node(name)
            if node is None or node.zone is None:
                score = 0
            elif name == claim_node:
                score = MAX_SCORE
            elif claim.subnet_id in with_subnet.get(name, ()):
                score = 8
            else:
                score = 4
            out.append((name, score))
        return out
    zones = snap.plan.zones
    # per zone: (score with a warm IP, score without)
    by_zone: dict[str | None, tuple[int, int]] = {}
    get_ips, get_awaiting = snap.node_ips.get, snap.node_awaiting.get
    out = []
    for name in names:
        node = get_node(name)
        if node is None or node.zone is None:
            out.append((name, 0))
            continue
        scores = by_zone.get(node.zone)
        if scores is None:
            plan = zones.get(node.zone)
            fraction = plan.free_fraction if plan is not None else 0.0
            scores = by_zone[node.zone] = (6 + round(4 * fraction), round(5 * fraction))
        ips = get_ips(name)
        warm = ips is not None and ips.warm > get_awaiting(name, 0)
        out.append((name, scores[0] if warm else scores[1]))
    return out


def _claim_node(claim: ClaimFacts | None, snap: Snapshot) -> str:
    """The node whose ENI holds the claimed IP now ("" if none/unknown)."""
    if claim is None:
        return ""
    ip = snap.ips.get(claim.ip)
    return ip.node if ip is not None else ""


def _static_zone_rule(claim: ClaimFacts, zone: str, node_zone: str | None) -> Rejection | None:
    where = f"static IP {claim.ip} (VpcIPClaim {claim.key})"
    if not zone:
        return _reject(
            STATIC_IP_ZONE_UNKNOWN,
            f"zone of {where} not known yet (subnet {claim.subnet_id or '?'} has no status "
            "from tke-eni-ipamd)",
            unresolvable=False,
        )
    if node_zone != zone:
        return _reject(
            STATIC_IP_ZONE,
            f"{where} is in zone {zone}; node is in zone {node_zone or '(none)'}",
            unresolvable=True,
        )
    return None


def _zone_rule(zone: str | None, snap: Snapshot) -> tuple[Rejection | None, bool]:  # noqa: PLR0911
    """(rejection for every node of the zone, whether the zone's subnets have
    free IPs)."""
    if zone is None:
        return NO_LABEL, False
    plan = snap.plan
    if not plan.config.present:
        return _reject(
            NO_SUBNET_CONFIG, f"ConfigMap {CONFIGMAP} not found", unresolvable=True
        ), False
    if not plan.config.subnet_ids:
        return _reject(
            NO_SUBNET_CONFIG,
            f"ConfigMap {CONFIGMAP} lists no subnet in {CM_SUBNET_ID}",
            unresolvable=True,
        ), False
    zone_plan = plan.zones.get(zone)
    if zone_plan is None or not zone_plan.active:
        if plan.pending:
            return _reject(
                SUBNET_NOT_VALIDATED,
                f"zone {zone} has no validated subnet yet: subnet {', '.join(plan.pending)} "
                "not yet validated by tke-eni-ipamd",
                unresolvable=False,
            ), False
        if zone_plan is not None:
            return _reject(
                ZONE_SUBNET_UNUSABLE,
                f"zone {zone} has no usable subnet in ConfigMap {CONFIGMAP}: "
                + "; ".join(_describe(s) for s in zone_plan.unusable),
                unresolvable=True,
            ), False
        return _reject(
            ZONE_NO_SUBNET,
            f"zone {zone} has no subnet in ConfigMap {CONFIGMAP}" + _elsewhere(plan.zones),
            unresolvable=True,
        ), False
    return None, zone_plan.available > 0


def _exhausted(zone: str | None, snap: Snapshot) -> Rejection:
    plan = snap.plan.zones.get(zone or "")
    subnets = ", ".join(s.subnet_id for s in plan.active) if plan is not None else "?"
    return _reject(
        SUBNET_EXHAUSTED,
        f"no free IP in zone {zone}: subnet {subnets} exhausted and no warm IP on the node",
        unresolvable=False,
    )


def _no_headroom(claim: ClaimFacts | None, *, bound: bool = False) -> Rejection:
    held = (
        ", reserved for a static IP or taken by a pod bound there waiting for its IP"
        if bound
        else " or reserved for a static IP"
    )
    return _reject(
        NO_HEADROOM,
        f"no ENI IP headroom: every {RESOURCE_ENI_IP} of the node is in use, cooling down"
        + held
        + (f" (needed to move {claim.ip} here)" if claim else ""),
        unresolvable=False,
    )


def _describe(s: SubnetView) -> str:
    return f"{s.subnet_id} is {s.state}" + (f" ({s.reason})" if s.reason else "")


def _elsewhere(zones: Mapping[str, ZonePlan]) -> str:
    usable = sorted(z for z, p in zones.items() if p.active)
    return f" (subnets are in zone {', '.join(usable)})" if usable else ""
