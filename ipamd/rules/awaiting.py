"""Pure: the pods bound to a node that wait for a dynamic IP, and how many
IPs they are owed — the part of a node's warm-pool demand that comes from
pods rather than from the warm targets (``ipamd.rules.pool.warm_delta``).

A pod waits for a dynamic IP of its node when it is

* bound (``spec.nodeName``) and ``Pending`` (its sandbox is not up yet; the
  CNI ADD may be waiting for a free IP), not being deleted;
* not in the host network, and requests ``tke.cloud.tencent.com/eni-ip``
  (``core.podrequest``: the webhook's mark of a pod that takes an ENI IP);
* not a static-IP pod (``core.claimpolicy``): the claim controller assigns
  its claimed IP on the node itself, never from the warm pool.

It is owed its request less the IPs of the node it holds already: those a
VpcIP shows ``InUse`` by its UID (the agent gave it one; the pool counts that
IP as used) or marks as its own (``core.models`` unclaimed mark; the pool
counts that IP as used too). So a pod is counted once: as waiting until its
IP shows, as used after. A pod deleted before it got its IP stops being
counted, and the IP added for it is ordinary surplus (trimmed as usual).

An unreadable request counts as 0: ipamd adds nothing for a pod whose request
the scheduler could not have counted either."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core import claimpolicy
from core import models as m
from core.podrequest import RequestError, eni_ip_request
from ipamd.rules.records import IpRec

#: the server-side filter of the pods watch (the summary applies it again)
FIELD_SELECTOR = "spec.nodeName!=,status.phase=Pending"


@dataclass(frozen=True, slots=True)
class WaitingPod:
    uid: str
    node: str
    need: int  # eni-ip requested (> 0)


def waiting_pod_from_obj(obj: Mapping[str, Any]) -> WaitingPod | None:
    """The pod as a ``WaitingPod``, or None when it waits for no dynamic IP."""
    meta = obj.get("metadata")
    spec = obj.get("spec")
    if not isinstance(meta, Mapping) or not isinstance(spec, Mapping):
        return None
    node = spec.get("nodeName")
    uid = meta.get("uid")
    if not (isinstance(node, str) and node and isinstance(uid, str) and uid):
        return None
    if not _may_wait(meta, spec, obj.get("status")):
        return None
    need = _need(spec)
    return WaitingPod(uid, node, need) if need > 0 else None


def _may_wait(meta: Mapping[str, Any], spec: Mapping[str, Any], status: object) -> bool:
    """Pending, not being deleted, not in the host network, not static."""
    phase = status.get("phase", "") if isinstance(status, Mapping) else ""
    if phase not in ("", "Pending") or meta.get("deletionTimestamp"):
        return False
    if spec.get("hostNetwork") is True:
        return False
    annotations = meta.get("annotations")
    return not claimpolicy.is_static(
        annotations if isinstance(annotations, Mapping) else None, meta.get("ownerReferences")
    )


def _need(spec: Mapping[str, Any]) -> int:
    """The eni-ip request; 0 when unreadable."""
    try:
        return eni_ip_request(spec)
    except RequestError:
        return 0


def held_by_pod(ips: Iterable[IpRec]) -> dict[str, int]:
    """Pod UID -> IPs (of one node) it holds: in use by it, or marked its own."""
    held: dict[str, int] = {}
    for ip in ips:
        uids = {ip.unclaimed_uid}
        if ip.phase == m.IP_PHASE_IN_USE:
            uids.add(ip.pod_uid)
        for uid in uids:
            if uid:
                held[uid] = held.get(uid, 0) + 1
    return held


def owed(pods: Iterable[WaitingPod], held: Mapping[str, int]) -> int:
    """IPs the waiting ``pods`` of one node are owed (each pod: its request
    less what it holds, never below 0)."""
    return sum(max(0, p.need - held.get(p.uid, 0)) for p in pods)
