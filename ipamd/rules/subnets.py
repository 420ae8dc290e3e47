"""Pure: the subnet ConfigMap (``kube-system/tke-eni-ipamd``) → a decision.

Parsing (``parse_configmap``) refuses malformed values outright; validation
(``decide``) checks each configured subnet against cloud facts (exists, in
the VPC, zone known) and a *new* one — not in the previous decision and
holding none of our ENIs — also for foreign ENIs and instances. The change is all
or nothing: one bad entry refuses the whole new set and the previous set stays
in force ("nothing half-applied"). Removing a subnet that still holds our IPs
makes it *draining* (no new IPs from it) instead of dropping it.

The accepted decision is what ipamd publishes (``SubnetStatus`` entries, Active
and Draining); ``decision_from_statuses`` reads it back at start, so a restart
resumes the last accepted set instead of starting from nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cloud.models import Subnet
from core import models as m
from core import names
from core.ids import SubnetId, VpcId, Zone

SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-z]{8}$")
VPC_ID_RE = re.compile(r"^vpc-[0-9a-z]{8}$")
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+-[0-9]+$")  # ap-guangzhou-3


class SubnetConfigError(ValueError):
    """The ConfigMap's values are malformed; the message names key and value."""


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    vpc_id: VpcId
    subnet_ids: tuple[SubnetId, ...]
    warnings: tuple[str, ...] = ()


def parse_configmap(data: Mapping[str, str] | None) -> SubnetConfig:
    where = f"ConfigMap {names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"
    data = data or {}
    warnings: list[str] = []
    if names.CM_ZONE_DEPRECATED in data:
        warnings.append(
            f"{where}: {names.CM_ZONE_DEPRECATED} is deprecated and ignored "
            "(each subnet's zone comes from the cloud)"
        )
    raw_vpc = data.get(names.CM_VPC_ID)
    if raw_vpc is None or not raw_vpc.strip():
        raise SubnetConfigError(f"{where}: {names.CM_VPC_ID} is missing or empty")
    vpc = raw_vpc.strip()
    if not VPC_ID_RE.match(vpc):
        raise SubnetConfigError(
            f"{where}: {names.CM_VPC_ID}={raw_vpc!r} is not a VPC id (expected vpc-xxxxxxxx)"
        )
    raw = data.get(names.CM_SUBNET_ID)
    if raw is None or not raw.strip():
        raise SubnetConfigError(f"{where}: {names.CM_SUBNET_ID} is missing or empty")
    ids: list[SubnetId] = []
    for part in raw.strip().split(names.CM_SUBNET_SEPARATOR):
        sid = part.strip()
        if not SUBNET_ID_RE.match(sid):
            raise SubnetConfigError(
                f"{where}: {names.CM_SUBNET_ID}={raw!r}: {sid!r} is not a subnet id "
                "(expected subnet-xxxxxxxx, colon-separated)"
            )
        if sid in ids:
            warnings.append(f"{where}: subnet {sid} listed twice")
            continue
        ids.append(SubnetId(sid))
    return SubnetConfig(VpcId(vpc), tuple(ids), tuple(warnings))


@dataclass(frozen=True, slots=True)
class SubnetFacts:
    """What the cloud says about one configured subnet."""

    subnet: Subnet | None  # None: DescribeSubnets did not return it
    foreign: tuple[str, ...] = ()  # ids of ENIs / instances in it that are not ours
    ours: int = 0  # ENIs in it tagged with our cluster id and creator


@dataclass(frozen=True, slots=True)
class Refusal:
    subnet_id: str
    reason: str


@dataclass(slots=True)
class SubnetDecision:
    """``accepted`` False: the new config is refused and ``active`` is the previous set."""

    accepted: bool
    vpc_id: VpcId
    active: dict[SubnetId, Subnet] = field(default_factory=dict)
    draining: dict[SubnetId, Subnet] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)

    def usable_in_zone(self, zone: str) -> list[Subnet]:
        return [s for s in self.active.values() if s.zone == zone]

    def zones(self) -> set[str]:
        return {s.zone for s in self.active.values()}

    def statuses(self) -> list[m.SubnetStatus]:
        out: list[m.SubnetStatus] = []
        for state, group in ((m.SUBNET_ACTIVE, self.active), (m.SUBNET_DRAINING, self.draining)):
            for s in group.values():
                out.append(
                    m.SubnetStatus(
                        subnet_id=s.subnet_id,
                        vpc_id=s.vpc_id,
                        zone=s.zone,
                        cidr=s.cidr,
                        available=s.available_ips,
                        total=s.total_ips,
                        state=state,
                    )
                )
        for r in self.refusals:
            out.append(
                m.SubnetStatus(subnet_id=r.subnet_id, state=m.SUBNET_INVALID, reason=r.reason)
            )
        return sorted(out, key=lambda s: s.subnet_id)


def check_subnet(
    sid: SubnetId, vpc_id: VpcId, facts: SubnetFacts | None, *, is_new: bool
) -> str | None:
    """The reason a subnet cannot be used, or None."""
    if facts is None or facts.subnet is None:
        return f"subnet {sid} does not exist in the cloud"
    s = facts.subnet
    if s.vpc_id != vpc_id:
        return f"subnet {sid} belongs to {s.vpc_id}, not to the configured {vpc_id}"
    if not s.zone or not ZONE_RE.match(s.zone):
        return f"subnet {sid} has an unknown zone {s.zone!r}"
    if is_new and facts.foreign:
        shown = ", ".join(sorted(facts.foreign)[:5])
        more = f" and {len(facts.foreign) - 5} more" if len(facts.foreign) > 5 else ""
        return (
            f"subnet {sid} is not empty: it holds resources not created by ipamd "
            f"({shown}{more}); use a dedicated subnet"
        )
    return None


def decide(
    config: SubnetConfig,
    facts: Mapping[SubnetId, SubnetFacts],
    *,
    previous: SubnetDecision | None,
    in_use: Mapping[str, int],
) -> SubnetDecision:
    """Validate ``config`` against ``facts``; keep ``previous`` when anything is wrong.

    ``in_use``: how many of our IPs/ENIs each subnet holds (a removed subnet
    with any becomes draining)."""
    prev_active = dict(previous.active) if previous else {}
    prev_ids = set(prev_active) | set(previous.draining if previous else {})
    refusals: list[Refusal] = []
    if (
        previous is not None
        and previous.vpc_id
        and previous.vpc_id != config.vpc_id
        and any(in_use.get(s, 0) for s in prev_ids)
    ):
        refusals.append(
            Refusal(
                config.vpc_id,
                f"changing {names.CM_VPC_ID} from {previous.vpc_id} to {config.vpc_id} "
                "while IPs of the old VPC are in use is not supported",
            )
        )
    active: dict[SubnetId, Subnet] = {}
    for sid in config.subnet_ids:
        f = facts.get(sid)
        # a subnet already holding our ENIs was accepted once: whatever else
        # appeared in it since is not a reason to stop using it
        is_new = sid not in prev_ids and not in_use.get(sid, 0) and not (f and f.ours)
        reason = check_subnet(sid, config.vpc_id, f, is_new=is_new)
        if reason:
            refusals.append(Refusal(sid, reason))
        elif f is not None and f.subnet is not None:
            active[sid] = f.subnet
    if refusals:
        kept = previous or SubnetDecision(accepted=False, vpc_id=config.vpc_id)
        return SubnetDecision(
            accepted=False,
            vpc_id=kept.vpc_id,
            active=dict(kept.active),
            draining=dict(kept.draining),
            refusals=refusals,
        )
    draining: dict[SubnetId, Subnet] = {}
    old = dict(prev_active)
    old.update(previous.draining if previous else {})
    for sid, sub in old.items():
        if sid not in active and in_use.get(sid, 0) > 0:
            fresh = facts.get(sid)
            draining[sid] = fresh.subnet if fresh and fresh.subnet else sub
    return SubnetDecision(accepted=True, vpc_id=config.vpc_id, active=active, draining=draining)


def refresh(decision: SubnetDecision, latest: Sequence[Subnet], in_use: Mapping[str, int]) -> None:
    """Update free-IP counts in place and drop draining subnets that are now empty."""
    by_id = {s.subnet_id: s for s in latest}
    for group in (decision.active, decision.draining):
        for sid in list(group):
            if sid in by_id:
                group[sid] = by_id[sid]
    for sid in list(decision.draining):
        if in_use.get(sid, 0) == 0:
            del decision.draining[sid]


def decision_from_statuses(statuses: Sequence[m.SubnetStatus]) -> SubnetDecision | None:
    """The accepted decision a previous ipamd published (its Active and Draining
    entries), or None when there is none or it does not hold together (several
    VPCs, a malformed id): then the caller starts without one."""
    active: dict[SubnetId, Subnet] = {}
    draining: dict[SubnetId, Subnet] = {}
    vpcs: set[str] = set()
    for st in statuses:
        if st.state not in (m.SUBNET_ACTIVE, m.SUBNET_DRAINING):
            continue
        if not SUBNET_ID_RE.match(st.subnet_id) or not VPC_ID_RE.match(st.vpc_id):
            return None
        if not st.zone or not ZONE_RE.match(st.zone):
            return None
        vpcs.add(st.vpc_id)
        sub = Subnet(
            SubnetId(st.subnet_id),
            VpcId(st.vpc_id),
            st.cidr,
            Zone(st.zone),
            st.available,
            st.total,
        )
        (active if st.state == m.SUBNET_ACTIVE else draining)[SubnetId(st.subnet_id)] = sub
    if len(vpcs) != 1 or not active:
        return None
    return SubnetDecision(accepted=True, vpc_id=VpcId(vpcs.pop()), active=active, draining=draining)
