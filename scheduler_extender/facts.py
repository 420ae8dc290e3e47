"""The few facts the extender keeps per watched object, read from the raw
Kubernetes JSON dicts (pure). Objects it cannot read are kept as "unknown"
rather than crashing a watch loop: a malformed VpcIP must not stop the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from core import usable
from core.models import (
    ENI_PHASE_ATTACHED,
    SubnetStatus,
    VpcEniSpec,
    VpcEniStatus,
    VpcIpClaimStatus,
    VpcIpSpec,
    VpcIpStatus,
    load_subnet_statuses,
)
from core.names import CM_SUBNET_ID, CM_SUBNET_SEPARATOR, CM_VPC_ID, RESOURCE_ENI_IP, zone_of


class NodeFacts(NamedTuple):
    """A tuple, not a dataclass: built per node per request in Nodes mode."""

    name: str
    zone: str | None
    eni_ip_allocatable: int | None  # None: the node advertises no eni-ip
    # the instance's limit (device plugin: healthy + unhealthy); None: not advertised
    eni_ip_capacity: int | None = None


# What one VpcIP means for its node's headroom (see docs/scheduler-extender.md).
# The reading is core.usable.record_class, shared with the node agent.
IP_WARM = usable.WARM  # spec.state Assigned, no claim, status.phase Free (or not yet reported)
IP_IN_USE = usable.IN_USE  # status.phase InUse
IP_COOLDOWN = usable.COOLING  # status.phase Cooldown
IP_RESERVED = usable.RESERVED  # spec.claim set and not in use: held for a static pod
IP_LEAVING = usable.LEAVING  # being released by ipamd (spec.state Releasing / phase Released)


@dataclass(frozen=True, slots=True)
class IpFacts:
    """One VpcIP, reduced to what headroom and warmth need."""

    ip: str
    node: str
    subnet_id: str
    zone: str
    claim: str  # "<namespace>/<name>" or ""
    category: str  # one of the IP_* categories above
    pod_uid: str = ""  # status.podUid: the pod the agent gave it to ("" when none)


@dataclass(frozen=True, slots=True)
class EniFacts:
    eni_id: str
    node: str
    subnet_id: str
    attached: bool


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    key: str  # "<namespace>/<name>"
    ip: str  # "" while the claim holds no IP
    subnet_id: str
    zone: str
    phase: str


@dataclass(frozen=True, slots=True)
class BoundPod:
    """A pod bound to a node, not running yet, that requests eni-ip: until the
    agent gives it its IP (a VpcIP in use with its UID), it holds ``need`` of
    the node's usable IPs that no VpcIP shows as taken."""

    uid: str
    key: str  # "<namespace>/<name>"
    node: str
    need: int
    static: bool  # core.claimpolicy: its claim's IP may already be reserved on the node


@dataclass(frozen=True, slots=True)
class SubnetConfig:
    """ConfigMap kube-system/tke-eni-ipamd as the extender reads it."""

    present: bool
    subnet_ids: tuple[str, ...]
    vpc_id: str


NO_SUBNET_CONFIG = SubnetConfig(present=False, subnet_ids=(), vpc_id="")


def node_facts(obj: dict[str, Any]) -> NodeFacts:
    meta = _dict(obj.get("metadata"))
    labels = {k: v for k, v in _dict(meta.get("labels")).items() if isinstance(v, str)}
    status = _dict(obj.get("status"))
    allocatable = _dict(status.get("allocatable"))
    return NodeFacts(
        name=str(meta.get("name", "")),
        zone=zone_of(labels),
        eni_ip_allocatable=quantity(allocatable.get(RESOURCE_ENI_IP)),
        eni_ip_capacity=quantity(_dict(status.get("capacity")).get(RESOURCE_ENI_IP)),
    )


def quantity(value: object) -> int | None:
    """An integer Kubernetes quantity ("30", 30, "1k"); None when absent or
    unreadable (the node then counts as advertising no eni-ip)."""
    if isinstance(value, str) and value.isdigit():  # the common case, first
        return int(value)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    factor = 1
    for suffix, mult in (("k", 1000), ("Ki", 1024), ("M", 1000**2), ("Mi", 1024**2)):
        if text.endswith(suffix) and text[: -len(suffix)].isdigit():
            text, factor = text[: -len(suffix)], mult
            break
    return int(text) * factor if text.isdigit() else None


def ip_facts(obj: dict[str, Any]) -> IpFacts:
    name = str(_dict(obj.get("metadata")).get("name", ""))
    spec = VpcIpSpec.from_dict(_dict(obj.get("spec")))
    status = VpcIpStatus.from_dict(_dict(obj.get("status")))
    return IpFacts(
        ip=name,
        node=spec.node_name,
        subnet_id=spec.subnet_id,
        zone=spec.zone,
        claim=spec.claim,
        category=ip_category(spec.state, status.phase, bool(spec.claim)),
        pod_uid=status.pod_uid,
    )


ip_category = usable.record_class


def eni_facts(obj: dict[str, Any]) -> EniFacts:
    name = str(_dict(obj.get("metadata")).get("name", ""))
    spec = VpcEniSpec.from_dict(_dict(obj.get("spec")))
    status = VpcEniStatus.from_dict(_dict(obj.get("status")))
    return EniFacts(name, spec.node_name, spec.subnet_id, status.phase == ENI_PHASE_ATTACHED)


def claim_facts(obj: dict[str, Any]) -> ClaimFacts:
    meta = _dict(obj.get("metadata"))
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    status = VpcIpClaimStatus.from_dict(_dict(obj.get("status")))
    return ClaimFacts(key, status.ip, status.subnet_id, status.zone, status.phase)


def subnet_config(obj: dict[str, Any] | None) -> SubnetConfig:
    if obj is None:
        return NO_SUBNET_CONFIG
    data = _dict(obj.get("data"))
    raw = data.get(CM_SUBNET_ID, "")
    ids = tuple(
        dict.fromkeys(
            part.strip()
            for part in (raw if isinstance(raw, str) else "").split(CM_SUBNET_SEPARATOR)
            if part.strip()
        )
    )
    vpc = data.get(CM_VPC_ID, "")
    return SubnetConfig(present=True, subnet_ids=ids, vpc_id=vpc if isinstance(vpc, str) else "")


def subnet_statuses(obj: dict[str, Any] | None, key: str) -> tuple[SubnetStatus, ...]:
    """The statuses ipamd published; an unreadable document reads as none
    (every configured subnet is then "not yet validated")."""
    if obj is None:
        return ()
    text = _dict(obj.get("data")).get(key, "")
    try:
        return tuple(load_subnet_statuses(text if isinstance(text, str) else ""))
    except (ValueError, TypeError):
        return ()


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
