"""Pure: is this pod's IP static? The one reading of the claim annotations,
shared by ipamd (creates the VpcIPClaim), the node agent (hands out the
claimed IP), the scheduler extender (keeps the pod in its IP's zone) and an
admission webhook.

Rules:

* ``tke.cloud.tencent.com/vpc-ip-claim-delete-policy`` is ``Never`` (static IP)
  or ``Immediate`` (dynamic IP, released on delete); surrounding whitespace is
  ignored, case is not (``never`` is invalid). Any other value: a dynamic IP
  and a Warning ``InvalidClaimPolicy``.
* Static IPs apply to StatefulSet pods only (TKE's rule: a pod's claim is
  named as the pod, and only a StatefulSet gives its replacement pod the same
  name). ``Never`` on a pod whose controller is not a StatefulSet (a
  Deployment's ReplicaSet, a Job, a bare pod) gives a dynamic IP and a Warning
  ``StaticIPNeedsStatefulSet``.
* ``tke.cloud.tencent.com/claim-expired-duration`` is a Go duration
  (``10m``, ``1h30m``, ``0s``); an invalid value falls back to ipamd's
  ``--claim-expired-duration`` with a Warning ``InvalidClaimDuration``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from core import names
from core.duration import DurationError, parse_duration

REASON_INVALID_POLICY = "InvalidClaimPolicy"
REASON_NEEDS_STATEFULSET = "StaticIPNeedsStatefulSet"
REASON_INVALID_DURATION = "InvalidClaimDuration"

STATEFULSET_KIND = "StatefulSet"
STATEFULSET_GROUP = "apps"


@dataclass(frozen=True, slots=True)
class ClaimPolicy:
    """The verdict for one pod. ``reason``/``message``: a Warning to emit on the
    pod when its annotation cannot be honoured as written ("" when fine)."""

    static: bool
    policy: str  # "Never", "Immediate", or "" (absent or invalid)
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class ExpiredDuration:
    """``value``: what goes into the claim's ``spec.expiredDuration`` ("" = the
    ipamd flag); ``duration``: its parse (None with ""); ``error``: why the
    annotation was ignored ("" when it was not)."""

    value: str = ""
    duration: timedelta | None = None
    error: str = ""


def parse_policy(value: object) -> tuple[str, str]:
    """(policy, error): policy "" with an error message for an invalid value,
    ("", "") when the annotation is absent (``None``)."""
    if value is None:
        return "", ""
    text = value.strip() if isinstance(value, str) else None
    if text in names.CLAIM_POLICIES:
        return str(text), ""
    return "", (
        f"annotation {names.ANNOTATION_CLAIM_DELETE_POLICY}={value!r} is not one of "
        f"{', '.join(names.CLAIM_POLICIES)}; the pod gets a dynamic IP"
    )


def controller_of(owner_references: object) -> Mapping[str, object] | None:
    """The ownerReference with ``controller: true`` (at most one per object)."""
    if not isinstance(owner_references, Sequence) or isinstance(owner_references, str):
        return None
    for ref in owner_references:
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            return ref
    return None


def owned_by_statefulset(owner_references: object) -> bool:
    ref = controller_of(owner_references)
    if ref is None or ref.get("kind") != STATEFULSET_KIND:
        return False
    api_version = ref.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/", 1)[0] == STATEFULSET_GROUP


def _owner_text(owner_references: object) -> str:
    ref = controller_of(owner_references)
    if ref is None:
        return "it has no controller"
    return f"its controller is {ref.get('kind', '?')} {ref.get('name', '?')}"


def claim_policy(
    annotations: Mapping[str, object] | None, owner_references: object = None
) -> ClaimPolicy:
    """Read a pod's claim policy from its annotations and
    ``metadata.ownerReferences`` (the raw JSON list)."""
    value = (annotations or {}).get(names.ANNOTATION_CLAIM_DELETE_POLICY)
    policy, error = parse_policy(value)
    if error:
        return ClaimPolicy(False, "", REASON_INVALID_POLICY, error)
    if policy != names.CLAIM_POLICY_NEVER:
        return ClaimPolicy(False, policy)
    if not owned_by_statefulset(owner_references):
        return ClaimPolicy(
            False,
            policy,
            REASON_NEEDS_STATEFULSET,
            f"annotation {names.ANNOTATION_CLAIM_DELETE_POLICY}={names.CLAIM_POLICY_NEVER} is "
            f"ignored: static IPs apply to StatefulSet pods only, and "
            f"{_owner_text(owner_references)}; the pod gets a dynamic IP",
        )
    return ClaimPolicy(True, policy)


def is_static(annotations: Mapping[str, object] | None, owner_references: object = None) -> bool:
    return claim_policy(annotations, owner_references).static


def parse_expired_duration(annotations: Mapping[str, object] | None) -> ExpiredDuration:
    """The pod's ``claim-expired-duration`` annotation, checked."""
    value = (annotations or {}).get(names.ANNOTATION_CLAIM_EXPIRED_DURATION)
    if value is None or (isinstance(value, str) and not value.strip()):
        return ExpiredDuration()
    if not isinstance(value, str):
        return ExpiredDuration(
            error=f"annotation {names.ANNOTATION_CLAIM_EXPIRED_DURATION}: expected a string, "
            f"got {type(value).__name__}; using the ipamd default"
        )
    try:
        duration = parse_duration(
            value, what=f"annotation {names.ANNOTATION_CLAIM_EXPIRED_DURATION}"
        )
    except DurationError as exc:
        return ExpiredDuration(error=f"{exc}; using the ipamd default")
    return ExpiredDuration(value.strip(), duration)
