"""Pure: the static-IP claim state machine and expiry.

A claim (VpcIPClaim, named as the pod) holds one IP. Inputs are summaries of
the claim, of the pod of the same name (if any) and of where the claimed IP
lives now; the output is one ``Step`` for the controller to carry out.

Phases: Pending (no IP yet) → Bound (IP reserved for the current pod UID on the
pod's node) → Reserved (pod gone, expiry counting from ``lastSeen``) →
Migrating (pod back on another node: the IP moves there) → Bound ... ; any
phase → Releasing (expired, owner gone, ``kubectl delete vipc``) → deleted.

Rules:
* a pod UID replaces the reserved one only once the old UID is gone (no pod
  object with it, and the agent reports no use by it);
* the IP moves only within its zone; a pod on a node of another zone waits
  with a message (the scheduler extender keeps such pods off those nodes);
* expiry = lastSeen + duration; the per-pod annotation
  ``tke.cloud.tencent.com/claim-expired-duration`` (copied into the claim's
  ``spec.expiredDuration``) overrides the ``--claim-expired-duration`` flag."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from core import models as m
from core import names
from core.claimpolicy import parse_expired_duration
from core.duration import DurationError, parse_duration


class Step(enum.Enum):
    NONE = "none"
    ALLOCATE = "allocate"  # give the claim a fresh IP on the pod's node
    RESERVE_FOR_POD = "reserve-for-pod"  # IP already on the pod's node: set reservedPodUID
    MIGRATE = "migrate"  # move the IP to the pod's node
    MARK_BOUND = "mark-bound"  # status → Bound (IP is in place for this pod)
    MARK_RESERVED = "mark-reserved"  # pod gone: status → Reserved, lastSeen, expiresAt
    RELEASE = "release"  # return the IP to the cloud, then drop the claim
    WAIT = "wait"  # waiting for the old pod to go / for a node of the right zone


@dataclass(frozen=True, slots=True)
class ClaimView:
    key: str  # namespace/name
    phase: str
    ip: str
    zone: str
    node_name: str
    pod_uid: str
    last_seen: datetime | None
    expired_duration: str  # spec.expiredDuration ("" = the flag)
    deleting: bool = False  # deletionTimestamp set (kubectl delete vipc)


@dataclass(frozen=True, slots=True)
class PodView:
    uid: str
    node_name: str  # "" = not scheduled yet
    node_zone: str
    deleting: bool = False
    policy: str = "Never"


@dataclass(frozen=True, slots=True)
class IpView:
    """Where the claimed IP is, per its VpcIP."""

    node_name: str
    node_alive: bool
    reserved_uid: str
    user_uid: str  # status.podUID when status.phase is InUse/Cooldown
    released: bool  # status.phase == Released (agent granted the release)
    releasing: bool = False  # spec.state == Releasing (a move was started)


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    reason: str = ""


def effective_duration(spec_value: str, default: timedelta | None) -> timedelta | None:
    """The claim's expiry duration: its own spec value, else the flag. An
    invalid spec value falls back to the flag (and is reported by whoever
    wrote it: annotations are validated when the claim is created)."""
    if spec_value:
        try:
            return parse_duration(spec_value, what="claim expired duration")
        except DurationError:
            return default
    return default


def validate_annotation(value: str | None) -> tuple[str, str | None]:
    """(value to store in spec.expiredDuration, error message or None), read
    by ``core.claimpolicy`` (the one parser of the claim annotations)."""
    got = parse_expired_duration(
        {} if value is None else {names.ANNOTATION_CLAIM_EXPIRED_DURATION: value}
    )
    return got.value, got.error or None


def expires_at(last_seen: datetime | None, duration: timedelta | None) -> datetime | None:
    if last_seen is None or duration is None:
        return None
    return last_seen + duration


def is_expired(claim: ClaimView, default: timedelta | None, now: datetime) -> bool:
    at = expires_at(claim.last_seen, effective_duration(claim.expired_duration, default))
    return at is not None and now >= at


def pod_alive(pod: PodView | None) -> bool:
    return pod is not None and not pod.deleting


#: the steps that act on what the claim's VpcIP says about where its address is
_TRUSTING_STEPS = frozenset(
    {Step.RESERVE_FOR_POD, Step.MARK_BOUND, Step.MARK_RESERVED, Step.MIGRATE, Step.RELEASE}
)


def needs_confirming(phase: str, ip: str, step: Step, *, record_releasing: bool = False) -> bool:
    """A ``Migrating`` claim's record may lag the cloud (the move's intent is
    written before the cloud call, the record writes come after it): before a
    step that trusts the record, the controller asks the cloud where the
    address is. Leaving ``Migrating`` (bound, reserved, released) goes through
    such a step, so a record is trusted again only once it was confirmed. A
    record with a release request open (``spec.state=Releasing``: a move or a
    release was started, a cloud write may have followed) is confirmed too,
    whatever the phase (e.g. left so by an ipamd without this rule)."""
    if not ip or step not in _TRUSTING_STEPS:
        return False
    return phase == m.CLAIM_PHASE_MIGRATING or record_releasing


def decide(  # noqa: PLR0911, PLR0912 - one branch per rule, read top to bottom
    claim: ClaimView,
    pod: PodView | None,
    ip: IpView | None,
    *,
    default_duration: tuple[timedelta | None],
    now: datetime,
    owner_gone: bool = False,
) -> Decision:
    """The next step for one claim. ``default_duration`` is a 1-tuple so that
    ``None`` (never) is passed explicitly."""
    default = default_duration[0]
    if claim.deleting:
        return Decision(Step.RELEASE, "claim deleted")
    if owner_gone and not pod_alive(pod):
        return Decision(Step.RELEASE, "owning workload deleted")
    if not claim.ip:
        if pod_alive(pod) and pod is not None and pod.node_name:
            return Decision(Step.ALLOCATE, f"pod scheduled to {pod.node_name}")
        return Decision(Step.NONE, "waiting for the pod to be scheduled")
    # the claim holds an IP
    if not pod_alive(pod) or pod is None:
        if claim.phase != m.CLAIM_PHASE_RESERVED or claim.last_seen is None:
            return Decision(Step.MARK_RESERVED, "pod gone")
        if is_expired(claim, default, now):
            return Decision(Step.RELEASE, "claim expired")
        return Decision(Step.NONE, "reserved")
    if not pod.node_name:
        if claim.phase == m.CLAIM_PHASE_BOUND and claim.pod_uid != pod.uid:
            return Decision(Step.MARK_RESERVED, "pod recreated, not scheduled yet")
        return Decision(Step.NONE, "waiting for the pod to be scheduled")
    if claim.zone and pod.node_zone and pod.node_zone != claim.zone:
        return Decision(
            Step.WAIT,
            f"pod is on node {pod.node_name} in zone {pod.node_zone}, but its IP {claim.ip} "
            f"belongs to zone {claim.zone}",
        )
    if ip is None:
        # the VpcIP record is missing (e.g. a crash mid-move): find it in the cloud
        return Decision(Step.MIGRATE, "IP record missing; locating it in the cloud")
    old_user = ip.user_uid and ip.user_uid != pod.uid
    if ip.node_name == pod.node_name:
        if ip.reserved_uid == pod.uid and ip.releasing:
            return Decision(Step.RESERVE_FOR_POD, "pod back on the node a move started from")
        if ip.reserved_uid == pod.uid:
            if claim.phase != m.CLAIM_PHASE_BOUND or claim.pod_uid != pod.uid:
                return Decision(Step.MARK_BOUND, "IP in place")
            return Decision(Step.NONE, "bound")
        if old_user and ip.node_alive:
            return Decision(Step.WAIT, f"old pod {ip.user_uid} still uses {claim.ip}")
        return Decision(Step.RESERVE_FOR_POD, "same node")
    if old_user and ip.node_alive and not ip.released:
        return Decision(Step.WAIT, f"old pod {ip.user_uid} still uses {claim.ip}")
    return Decision(Step.MIGRATE, f"pod moved from {ip.node_name or '?'} to {pod.node_name}")
