"""The shapes of the state the components share through the Kubernetes API
(CRDs of group ``networking.tke.cloud.tencent.com/v1`` and the subnet status
ConfigMap), as plain dataclasses with ``to_dict``/``from_dict`` for the wire.

Ownership (one writer per fact):

* ``VpcENI`` (cluster-scoped, named by the ENI id): written by ipamd only.
* ``VpcIP`` (cluster-scoped, named by the IP): ``spec`` by ipamd (which node /
  ENI holds the IP, whether it is reserved for a claim, and the release
  request); ``status`` by the node agent of ``spec.nodeName`` (who uses it).
* ``VpcIPClaim`` (namespaced, named as the pod): written by ipamd only.
* ConfigMap ``kube-system/tke-eni-ipamd-status`` key ``subnets.json``: ipamd.

The release handshake (no IP is unassigned while a pod may still use it, and
the agent's CNI ADD never waits for an API write):

1. ipamd wants an IP back (surplus, drain, claim move): it sets
   ``spec.state = Releasing`` and a fresh ``spec.releaseId`` (one id per
   request; a request already open keeps its id).
2. The agent alone decides between "use" and "release": when the IP is not in
   use (nor cooling down) it stops offering it and writes
   ``status.phase = Released`` with ``status.releaseId`` = the
   ``spec.releaseId`` it read in the same view (it echoes the request it
   answers); while in use it leaves it alone.
3. ipamd unassigns/migrates the IP in the cloud only once
   ``release_granted`` holds: ``spec.state == Releasing``, ``status.phase ==
   Released`` and ``status.releaseId == spec.releaseId`` (non-empty) — or the
   node is gone. It then deletes the ``VpcIP`` (or re-creates it on the
   destination node for a claim).

A "Released" left from an earlier request, or written by an agent that does
not echo the id, never counts. When ipamd takes a request back (the IP goes
back to ``Assigned``) it clears ``spec.releaseId``; when it re-creates or
re-points a record (another node, ENI or claim) it clears the whole
``status``: the previous holder's answer is not the new holder's.

The agent offers an IP to pods only while ``spec.state == Assigned``; an IP
with ``spec.claim`` set only to the pod ``claim`` names (and, when
``spec.reservedPodUID`` is set, only to that UID).

A claim deleted while its pod runs (``kubectl delete vipc``, or a claim of a
pod no StatefulSet owns): the pod keeps its address as a dynamic IP. ipamd
drops ``spec.claim`` and sets ``spec.unclaimedPodUid`` to that pod's UID in
one write; this durable mark (``unclaimed_uid``) is what both sides read from
then on: ipamd makes no new claim for that pod UID (after a restart or a
hand-over too), and the agent treats that UID as dynamic and gives a new
sandbox of it the marked address (it never offers a marked address to
another pod while the marked one holds it). A new pod of the StatefulSet (a
new UID) gets a new claim as usual. The mark goes with the record (deleted
when the IP is released; re-created records carry none); UIDs are never
reused, so a mark left after its pod is gone means nothing.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any, Final, Self

# --- VpcIP ---
IP_STATE_ASSIGNED: Final = "Assigned"  # spec.state: the node may use it
IP_STATE_RELEASING: Final = "Releasing"  # spec.state: ipamd asks for it back
IP_PHASE_FREE: Final = "Free"  # status.phase: warm, unused
IP_PHASE_IN_USE: Final = "InUse"
IP_PHASE_COOLDOWN: Final = "Cooldown"
IP_PHASE_RELEASED: Final = "Released"  # agent granted the release request

# --- VpcENI ---
ENI_PHASE_CREATING: Final = "Creating"
ENI_PHASE_ATTACHING: Final = "Attaching"
ENI_PHASE_ATTACHED: Final = "Attached"
ENI_PHASE_DETACHING: Final = "Detaching"
ENI_PHASE_DELETING: Final = "Deleting"
ENI_PHASE_DETACHED: Final = "Detached"  # ENI of a removed node, kept for claimed IPs

# --- VpcIPClaim ---
CLAIM_PHASE_PENDING: Final = "Pending"  # no IP yet
CLAIM_PHASE_BOUND: Final = "Bound"  # IP held, pod running
CLAIM_PHASE_RESERVED: Final = "Reserved"  # IP held, pod gone (expiry counting)
CLAIM_PHASE_MIGRATING: Final = "Migrating"
CLAIM_PHASE_RELEASING: Final = "Releasing"

# --- subnet status ConfigMap ---
SUBNET_STATUS_CONFIGMAP: Final = "tke-eni-ipamd-status"
SUBNET_STATUS_KEY: Final = "subnets.json"
SUBNET_ACTIVE: Final = "Active"
SUBNET_DRAINING: Final = "Draining"  # removed from the ConfigMap but still in use
SUBNET_INVALID: Final = "Invalid"


class _Wire:
    """camelCase dict <-> dataclass; unknown keys are ignored, missing ones default."""

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = data or {}
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            key = _camel(f.name)
            if key in data and data[key] is not None:
                kwargs[f.name] = data[key]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)  # type: ignore[call-overload]
        return {_camel(k): v for k, v in raw.items() if v is not None and v != ""}

    def to_patch(self, *, keep: Collection[str] = ()) -> dict[str, Any]:
        """Every field, for a merge patch that replaces what is there: an empty
        value is ``None`` (deletes the key), except the fields named in
        ``keep`` (sent as they are, e.g. required ones)."""
        raw = asdict(self)  # type: ignore[call-overload]
        return {
            _camel(k): v if (k in keep or (v is not None and v != "")) else None
            for k, v in raw.items()
        }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


@dataclass(slots=True)
class VpcEniSpec(_Wire):
    node_name: str = ""
    instance_id: str = ""
    subnet_id: str = ""
    vpc_id: str = ""
    zone: str = ""


@dataclass(slots=True)
class VpcEniStatus(_Wire):
    phase: str = ""
    mac: str = ""  # lower-case, colon-separated
    primary_ip: str = ""
    subnet_cidr: str = ""
    gateway: str = ""
    device_index: int | None = None
    ip_capacity: int | None = None  # IPs per ENI, primary included
    message: str = ""


@dataclass(slots=True)
class VpcIpSpec(_Wire):
    node_name: str = ""
    eni_id: str = ""
    subnet_id: str = ""
    zone: str = ""
    state: str = IP_STATE_ASSIGNED
    claim: str = ""  # "<namespace>/<name>" of a VpcIPClaim, for static IPs
    reserved_pod_uid: str = ""
    release_id: str = ""  # the open release request (set with state Releasing)
    # the pod whose claim was deleted while it ran with this address (see above)
    unclaimed_pod_uid: str = ""


def unclaimed_uid(spec_claim: str, unclaimed_pod_uid: str) -> str:
    """The pod UID a VpcIP marks as "its claim was deleted, it keeps this
    address as a dynamic IP" ("" when none): the mark counts only on a record
    without a claim (a record given to a claim again is that claim's)."""
    return "" if spec_claim else unclaimed_pod_uid


@dataclass(slots=True)
class VpcIpStatus(_Wire):
    phase: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    container_id: str = ""
    cooldown_until: str = ""  # RFC 3339
    updated: str = ""  # RFC 3339
    release_id: str = ""  # with phase Released: the spec.releaseId it answers


def release_granted(state: str, release_id: str, phase: str, granted_id: str) -> bool:
    """The agent's answer to the open release request (step 3 above):
    ``spec.state``, ``spec.releaseId``, ``status.phase``, ``status.releaseId``."""
    return (
        state == IP_STATE_RELEASING
        and phase == IP_PHASE_RELEASED
        and bool(release_id)
        and granted_id == release_id
    )


@dataclass(slots=True)
class VpcIpClaimSpec(_Wire):
    policy: str = "Never"
    expired_duration: str = ""  # Go duration; empty = the ipamd flag


@dataclass(slots=True)
class VpcIpClaimStatus(_Wire):
    phase: str = ""
    ip: str = ""
    subnet_id: str = ""
    zone: str = ""
    node_name: str = ""
    pod_uid: str = ""
    last_seen: str = ""  # RFC 3339: when the pod was last seen
    expires_at: str = ""  # RFC 3339, empty = never
    message: str = ""


@dataclass(slots=True)
class SubnetStatus(_Wire):
    subnet_id: str = ""
    vpc_id: str = ""
    zone: str = ""
    cidr: str = ""
    available: int = 0  # free in the cloud (not assigned to any ENI)
    total: int = 0
    state: str = SUBNET_ACTIVE
    reason: str = ""


def rfc3339(t: datetime | float) -> str:
    """A timestamp field of the CRDs (``lastSeen``, ``expiresAt``,
    ``cooldownUntil``, ``updated``): UTC, whole seconds, ``Z``. ``t``: an
    aware datetime or unix time."""
    when = datetime.fromtimestamp(t, UTC) if isinstance(t, int | float) else t.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime | None:
    """A timestamp field read back (any RFC 3339 form); None when empty or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def dump_subnet_statuses(items: list[SubnetStatus]) -> str:
    return json.dumps([s.to_dict() for s in items], sort_keys=True)


def load_subnet_statuses(text: str) -> list[SubnetStatus]:
    data = json.loads(text or "[]")
    if not isinstance(data, list):
        raise ValueError(f"{SUBNET_STATUS_KEY}: expected a JSON list")
    return [SubnetStatus.from_dict(d) for d in data if isinstance(d, dict)]
