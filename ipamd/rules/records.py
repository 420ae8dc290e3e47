"""Pure: the per-object summaries ipamd keeps in memory (slots dataclasses,
interned strings) and the functions that build them from API objects. Only
the fields decisions use are kept: 150,000 VpcIPs must fit in a few tens of
MB."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from core import models as m
from core import names
from core.claimpolicy import claim_policy
from ipamd.rules.providerid import instance_id_of

JSON = dict[str, Any]
_i = sys.intern


def _meta(obj: JSON) -> JSON:
    meta: JSON = obj.get("metadata") or {}
    return meta


@dataclass(frozen=True, slots=True)
class IpRec:
    ip: str
    node: str
    eni: str
    subnet: str
    zone: str
    state: str  # spec.state
    claim: str  # "ns/name" or ""
    reserved_uid: str
    phase: str  # status.phase (agent)
    pod_uid: str  # status.podUID (agent)
    updated: str  # status.updated (agent, RFC 3339)
    release_id: str = ""  # spec.releaseId: the open release request
    granted_id: str = ""  # status.releaseId: the request the agent answered
    # core.models.unclaimed_uid: the pod whose claim was deleted while it ran here
    unclaimed_uid: str = ""

    @property
    def dynamic(self) -> bool:
        return not self.claim

    @property
    def release_granted(self) -> bool:
        """The agent answered the open release request (core.models)."""
        return m.release_granted(self.state, self.release_id, self.phase, self.granted_id)

    @property
    def used(self) -> bool:
        return self.phase in (m.IP_PHASE_IN_USE, m.IP_PHASE_COOLDOWN)


def ip_from_obj(obj: JSON) -> IpRec:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    return IpRec(
        ip=_i(str(_meta(obj).get("name", ""))),
        node=_i(str(spec.get("nodeName", ""))),
        eni=_i(str(spec.get("eniId", ""))),
        subnet=_i(str(spec.get("subnetId", ""))),
        zone=_i(str(spec.get("zone", ""))),
        state=_i(str(spec.get("state", m.IP_STATE_ASSIGNED))),
        claim=str(spec.get("claim", "")),
        reserved_uid=str(spec.get("reservedPodUid", "")),
        phase=_i(str(st.get("phase", ""))),
        pod_uid=str(st.get("podUid", "")) or "",
        updated=str(st.get("updated", "")),
        release_id=str(spec.get("releaseId") or ""),
        granted_id=str(st.get("releaseId") or ""),
        unclaimed_uid=m.unclaimed_uid(
            str(spec.get("claim") or ""), str(spec.get("unclaimedPodUid") or "")
        ),
    )


@dataclass(frozen=True, slots=True)
class EniRec:
    eni_id: str
    node: str
    instance_id: str
    subnet: str
    zone: str
    phase: str
    capacity: int
    mac: str
    primary_ip: str
    device_index: int


def eni_from_obj(obj: JSON) -> EniRec:
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    return EniRec(
        eni_id=_i(str(_meta(obj).get("name", ""))),
        node=_i(str(spec.get("nodeName", ""))),
        instance_id=_i(str(spec.get("instanceId", ""))),
        subnet=_i(str(spec.get("subnetId", ""))),
        zone=_i(str(spec.get("zone", ""))),
        phase=_i(str(st.get("phase", ""))),
        capacity=int(st.get("ipCapacity") or 0),
        mac=str(st.get("mac", "")),
        primary_ip=str(st.get("primaryIp", "")),
        device_index=int(st.get("deviceIndex") or 0),
    )


@dataclass(frozen=True, slots=True)
class Owner:
    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class ClaimRec:
    namespace: str
    name: str
    uid: str
    policy: str
    expired_duration: str
    phase: str
    ip: str
    subnet: str
    zone: str
    node: str
    pod_uid: str
    last_seen: str
    expires_at: str
    deleting: bool
    has_finalizer: bool
    owner: Owner | None
    message: str = ""  # status.message: why the claim waits (cleared by the next status write)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _owner(meta: JSON) -> Owner | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") or len(meta.get("ownerReferences") or []) == 1:
            return Owner(
                str(ref.get("apiVersion", "")),
                str(ref.get("kind", "")),
                str(ref.get("name", "")),
                str(ref.get("uid", "")),
            )
    return None


def claim_from_obj(obj: JSON) -> ClaimRec:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    return ClaimRec(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        policy=str(spec.get("policy", names.CLAIM_POLICY_NEVER)),
        expired_duration=str(spec.get("expiredDuration", "")),
        phase=str(st.get("phase", "")),
        ip=str(st.get("ip", "")),
        subnet=str(st.get("subnetId", "")),
        zone=str(st.get("zone", "")),
        node=str(st.get("nodeName", "")),
        pod_uid=str(st.get("podUid", "")),
        last_seen=str(st.get("lastSeen", "")),
        expires_at=str(st.get("expiresAt", "")),
        deleting=bool(meta.get("deletionTimestamp")),
        has_finalizer=names.FINALIZER_RELEASE_IP in (meta.get("finalizers") or []),
        owner=_owner(meta),
        message=str(st.get("message", "")),
    )


@dataclass(frozen=True, slots=True)
class NodeRec:
    name: str
    instance_id: str
    zone: str
    instance_type: str
    deleting: bool
    uid: str = ""


def node_from_obj(obj: JSON) -> NodeRec:
    meta = _meta(obj)
    labels = meta.get("labels") or {}
    spec = obj.get("spec") or {}
    itype = labels.get(names.INSTANCE_TYPE_LABEL) or labels.get(names.LEGACY_INSTANCE_TYPE_LABEL)
    return NodeRec(
        name=_i(str(meta.get("name", ""))),
        instance_id=instance_id_of(spec.get("providerID"), labels, meta.get("annotations")) or "",
        zone=_i(names.zone_of(labels) or ""),
        instance_type=str(itype or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        uid=str(meta.get("uid") or ""),
    )


@dataclass(frozen=True, slots=True)
class PodRec:
    namespace: str
    name: str
    uid: str
    node: str
    policy: str  # vpc-ip-claim-delete-policy, as core.claimpolicy reads it ("" = invalid)
    expired_annotation: str | None
    deleting: bool
    terminal: bool  # Succeeded/Failed: its IP is no longer used
    owner: Owner | None
    static: bool = False  # core.claimpolicy: Never, on a StatefulSet's pod
    ip: str = ""  # status.podIP: the address the pod runs with (the kubelet's report)
    policy_reason: str = ""  # a Warning to emit: the annotation cannot be honoured
    policy_message: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_from_obj(obj: JSON) -> PodRec | None:
    """Only pods that carry the claim-policy annotation are kept."""
    meta = _meta(obj)
    ann = meta.get("annotations") or {}
    policy = ann.get(names.ANNOTATION_CLAIM_DELETE_POLICY)
    if policy is None:
        return None
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase", "")
    verdict = claim_policy(ann, meta.get("ownerReferences"))
    return PodRec(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        node=_i(str(spec.get("nodeName", "") or "")),
        policy=verdict.policy,
        expired_annotation=ann.get(names.ANNOTATION_CLAIM_EXPIRED_DURATION),
        deleting=bool(meta.get("deletionTimestamp")),
        terminal=phase in ("Succeeded", "Failed"),
        owner=_owner(meta),
        static=verdict.static,
        policy_reason=verdict.reason,
        policy_message=verdict.message,
        ip=str((obj.get("status") or {}).get("podIP") or ""),
    )
