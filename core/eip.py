"""Pure: pod EIPs. The names (annotations, resource, tags), the reading of a
pod's EIP annotations, and the one-step plan ipamd follows for a pod's EIPs.

Annotations a user writes on a pod:

* ``tke.cloud.tencent.com/eip-attributes``: a JSON object of the allocation
  parameters: ``Bandwidth`` (Mbps, a number or a string of digits),
  ``ISP`` (``BGP``, ``CMCC``, ``CTCC``, ``CUCC``) and ``InternetChargeType``
  (the API's charge types); ``{}`` takes the API's defaults. Bad JSON, an
  unknown key or a bad value: nothing is allocated and the pod gets a Warning
  ``InvalidEipAttributes``.
* ``tke.cloud.tencent.com/eip-claim-delete-policy``: ``Never`` keeps the EIP
  across the pod's delete and re-create (a StatefulSet pod: same name) and its
  moves between nodes; ``Immediate`` (the default) releases it with the pod.
  ``Never`` on a pod no StatefulSet controls is ignored (Warning
  ``EipNeverNeedsStatefulSet``); any other value: Warning
  ``InvalidEipClaimPolicy`` and nothing allocated.

What ipamd writes: the pod annotations ``tke.cloud.tencent.com/eip-public-ip``
and ``tke.cloud.tencent.com/eip-id``, and tags on the EIP (cluster id, the pod's
``namespace/name`` and uid, the policy, the StatefulSet owner) — the EIP's own
tags are the durable record of which pod holds it (see docs/ipamd.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.claimpolicy import controller_of, owned_by_statefulset

# --- names ---
RESOURCE_EIP = "tke.cloud.tencent.com/eip"
ANNOTATION_EIP_ATTRIBUTES = "tke.cloud.tencent.com/eip-attributes"
ANNOTATION_EIP_CLAIM_DELETE_POLICY = "tke.cloud.tencent.com/eip-claim-delete-policy"
ANNOTATION_EIP_PUBLIC_IP = "tke.cloud.tencent.com/eip-public-ip"
ANNOTATION_EIP_ID = "tke.cloud.tencent.com/eip-id"
POLICY_NEVER = "Never"
POLICY_IMMEDIATE = "Immediate"
POLICIES = (POLICY_IMMEDIATE, POLICY_NEVER)
TAG_POD = "tke-eip-pod"  # namespace/name
TAG_POD_UID = "tke-eip-pod-uid"
TAG_POLICY = "tke-eip-policy"
TAG_OWNER = "tke-eip-owner"  # apiVersion/kind/name of the StatefulSet (Never only)
TAG_OWNER_UID = "tke-eip-owner-uid"

REASON_INVALID_ATTRIBUTES = "InvalidEipAttributes"
REASON_INVALID_POLICY = "InvalidEipClaimPolicy"
REASON_NEEDS_STATEFULSET = "EipNeverNeedsStatefulSet"
REASON_ALLOCATED = "EipAllocated"
REASON_ASSOCIATED = "EipAssociated"
REASON_RELEASED = "EipReleased"
REASON_KEPT = "EipKept"
REASON_FAILED = "EipFailed"

ISPS = ("BGP", "CMCC", "CTCC", "CUCC")
#: InternetChargeType -> the Mbps range its InternetMaxBandwidthOut allows
BANDWIDTH_RANGE: dict[str, tuple[int, int]] = {
    "TRAFFIC_POSTPAID_BY_HOUR": (1, 100),
    "BANDWIDTH_POSTPAID_BY_HOUR": (1, 100),
    "BANDWIDTH_PREPAID_BY_MONTH": (1, 200),
    "BANDWIDTH_PACKAGE": (1, 2000),
}
DEFAULT_CHARGE = "TRAFFIC_POSTPAID_BY_HOUR"
KEYS = ("Bandwidth", "ISP", "InternetChargeType")


@dataclass(frozen=True, slots=True)
class EipAttributes:
    bandwidth_mbps: int | None = None
    isp: str | None = None
    charge_type: str | None = None


@dataclass(frozen=True, slots=True)
class EipRequest:
    """A pod's EIP request as read from its annotations. ``attributes`` None:
    invalid (``reason``/``message`` say why; nothing is allocated). A valid
    request may still carry a Warning (``Never`` ignored)."""

    attributes: EipAttributes | None
    never: bool
    reason: str = ""
    message: str = ""


def parse_attributes(raw: str) -> tuple[EipAttributes | None, str]:  # noqa: PLR0911 - one exit per check
    """(attributes, "") or (None, why)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, f"{ANNOTATION_EIP_ATTRIBUTES} is not valid JSON: {exc}"
    if not isinstance(data, dict):
        return None, f"{ANNOTATION_EIP_ATTRIBUTES} must be a JSON object, got {type(data).__name__}"
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        return None, (
            f"{ANNOTATION_EIP_ATTRIBUTES}: unknown key(s) {', '.join(unknown)}; "
            f"known: {', '.join(KEYS)}"
        )
    charge = data.get("InternetChargeType")
    if charge is not None and charge not in BANDWIDTH_RANGE:
        return None, (
            f"{ANNOTATION_EIP_ATTRIBUTES}: InternetChargeType {charge!r} is not one of "
            f"{', '.join(BANDWIDTH_RANGE)}"
        )
    isp = data.get("ISP")
    if isp is not None and isp not in ISPS:
        return None, f"{ANNOTATION_EIP_ATTRIBUTES}: ISP {isp!r} is not one of {', '.join(ISPS)}"
    bandwidth: int | None = None
    value = data.get("Bandwidth")
    if value is not None:
        if isinstance(value, str) and value.strip().isdigit():
            bandwidth = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            bandwidth = value
        else:
            return None, f"{ANNOTATION_EIP_ATTRIBUTES}: Bandwidth {value!r} is not a whole number"
        lo, hi = BANDWIDTH_RANGE[charge or DEFAULT_CHARGE]
        if not lo <= bandwidth <= hi:
            return None, (
                f"{ANNOTATION_EIP_ATTRIBUTES}: Bandwidth {bandwidth} is outside [{lo}, {hi}] "
                f"Mbps for {charge or DEFAULT_CHARGE}"
            )
    return EipAttributes(bandwidth, isp, charge), ""


def eip_request(
    annotations: Mapping[str, object] | None, owner_references: object = None
) -> EipRequest | None:
    """The pod's EIP request, or None when it asks for no EIP."""
    ann = annotations or {}
    raw = ann.get(ANNOTATION_EIP_ATTRIBUTES)
    if raw is None:
        return None
    if not isinstance(raw, str):
        return EipRequest(None, False, REASON_INVALID_ATTRIBUTES, "annotation is not a string")
    policy_raw = ann.get(ANNOTATION_EIP_CLAIM_DELETE_POLICY)
    policy = policy_raw.strip() if isinstance(policy_raw, str) else POLICY_IMMEDIATE
    if policy_raw is not None and policy not in POLICIES:
        return EipRequest(
            None,
            False,
            REASON_INVALID_POLICY,
            f"{ANNOTATION_EIP_CLAIM_DELETE_POLICY}={policy_raw!r} is not one of "
            f"{', '.join(POLICIES)}; no EIP is allocated",
        )
    attrs, error = parse_attributes(raw)
    if attrs is None:
        return EipRequest(None, False, REASON_INVALID_ATTRIBUTES, f"{error}; no EIP is allocated")
    if policy == POLICY_NEVER and not owned_by_statefulset(owner_references):
        ref = controller_of(owner_references)
        what = "it has no controller" if ref is None else f"its controller is {ref.get('kind')}"
        return EipRequest(
            attrs,
            False,
            REASON_NEEDS_STATEFULSET,
            f"{ANNOTATION_EIP_CLAIM_DELETE_POLICY}=Never is ignored: only a StatefulSet's pod "
            f"keeps its EIP, and {what}; the EIP is released with the pod",
        )
    return EipRequest(attrs, policy == POLICY_NEVER)


# --- the plan ---------------------------------------------------------------------
#: address states with a task running: wait for them
BUSY = frozenset({"CREATING", "BINDING", "UNBINDING", "OFFLINING"})
BOUND = frozenset({"BIND", "BIND_ENI"})


@dataclass(frozen=True, slots=True)
class EipView:
    eip_id: str
    public_ip: str
    status: str
    eni_id: str | None
    private_ip: str | None
    tags: Mapping[str, str]
    age_s: float

    @property
    def never(self) -> bool:
        return self.tags.get(TAG_POLICY) == POLICY_NEVER


@dataclass(frozen=True, slots=True)
class PodView:
    """A pod that asks for an EIP and runs (not deleting, not finished)."""

    uid: str
    never: bool
    ip: str  # "" until it has one
    eni_id: str  # the ENI holding ``ip`` ("" when unknown)


@dataclass(frozen=True, slots=True)
class Step:
    """One action: allocate, associate, disassociate, release, annotate, wait, done.
    ``eip`` names the address acted on; ``why`` is for logs and events."""

    action: str
    eip: EipView | None = None
    why: str = ""


def _mine(pod: PodView, e: EipView) -> bool:
    """An EIP tagged with this pod's name that this pod instance may use: its
    own (same uid), or one kept by Never for whoever bears the name next."""
    return e.tags.get(TAG_POD_UID) == pod.uid or (pod.never and e.never)


def plan(  # noqa: PLR0911 - one exit per step
    pod: PodView | None,
    eips: Sequence[EipView],
    *,
    pod_known: bool,
    owner_gone: bool,
    min_age_s: float,
) -> Step:
    """The next step for the EIPs tagged with one pod name. ``pod``: the running
    pod asking for an EIP (None: gone, deleting, finished or no longer asking);
    ``pod_known``: the pod object exists (a missing one may be too new for our
    watch: its EIPs wait ``min_age_s`` before they count as leaked);
    ``owner_gone``: the StatefulSet named in a Never EIP's tags is gone."""
    mine = [e for e in eips if pod is not None and _mine(pod, e)]
    mine.sort(key=lambda e: (e.tags.get(TAG_POD_UID) != (pod.uid if pod else ""), -e.age_s))
    keep = mine[0] if mine else None
    for e in eips:
        if e is keep:
            continue
        if e.status in BUSY:
            return Step("wait", e, "a task is running on it")
        if e.status in BOUND:
            return Step("disassociate", e, "its pod is gone or holds another EIP")
        if e.never and not owner_gone and (pod is None or not pod.never):
            continue  # kept for the StatefulSet's next pod of this name
        if not pod_known and e.age_s < min_age_s:
            return Step("wait", e, "younger than the leak minimum age")
        return Step("release", e, "its pod is gone" if pod is None else "not this pod's")
    if pod is None:
        return Step("done")
    if keep is None:
        return Step("allocate")
    if keep.status in BUSY:
        return Step("wait", keep, "a task is running on it")
    if keep.status in BOUND:
        if pod.ip and keep.private_ip == pod.ip and (keep.eni_id == pod.eni_id or not pod.eni_id):
            return Step("annotate", keep)
        return Step("disassociate", keep, "bound to an address the pod no longer has")
    if pod.ip and pod.eni_id:
        return Step("associate", keep)
    return Step("annotate", keep, "the pod has no IP yet")
