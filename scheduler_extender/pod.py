"""What the extender needs to know about the pod being scheduled, read from
the v1.Pod JSON the scheduler sends (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.claimpolicy import is_static
from core.podrequest import RequestError, eni_ip_request, json_kind

from .facts import BoundPod


class PodError(ValueError):
    """The Pod JSON is not a pod we can read (reported as HTTP 400)."""


@dataclass(frozen=True, slots=True)
class PodFacts:
    namespace: str
    name: str
    uid: str
    eni_ips: int  # effective eni-ip request (0: the pod needs no ENI IP)
    static: bool  # core.claimpolicy: its IP may be held by a VpcIPClaim

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_facts(pod: object) -> PodFacts:
    """Read a v1.Pod dict. Raises PodError with the offending field."""
    if not isinstance(pod, dict):
        raise PodError(f"Pod: expected a JSON object, got {_kind(pod)}")
    meta = _obj(pod, "metadata", "Pod.metadata")
    name = _str(meta, "name", "Pod.metadata.name")
    if not name:
        raise PodError("Pod.metadata.name: missing or empty")
    namespace = _str(meta, "namespace", "Pod.metadata.namespace") or "default"
    uid = _str(meta, "uid", "Pod.metadata.uid")
    annotations = _obj(meta, "annotations", "Pod.metadata.annotations")
    static = is_static(annotations, meta.get("ownerReferences"))
    spec = _obj(pod, "spec", "Pod.spec")
    return PodFacts(namespace, name, uid, _eni_ip_request(spec), static)


def bound_pod(obj: dict[str, Any]) -> BoundPod | None:
    """A watched pod that holds eni-ip on its node without an IP of its own yet:
    bound (``spec.nodeName``), still ``Pending``, not being deleted, requesting
    eni-ip. None otherwise, and for a pod we cannot read (its request unknown:
    kube-scheduler's own count still holds it)."""
    meta = obj.get("metadata")
    spec = obj.get("spec")
    status = obj.get("status")
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return None
    node = spec.get("nodeName")
    phase = status.get("phase", "") if isinstance(status, dict) else ""
    if not node or not isinstance(node, str) or phase not in ("", "Pending"):
        return None
    if meta.get("deletionTimestamp"):
        return None
    try:
        facts = pod_facts(obj)
    except PodError:
        return None
    if facts.eni_ips <= 0 or not facts.uid:
        return None
    return BoundPod(facts.uid, facts.key, node, facts.eni_ips, facts.static)


def _eni_ip_request(spec: dict[str, Any]) -> int:
    """The scheduler's effective request (``core.podrequest``, ipamd's reading
    too): max(sum over containers, max over init containers), each container's
    request defaulting to its limit."""
    try:
        return eni_ip_request(spec, "Pod.spec")
    except RequestError as exc:
        raise PodError(str(exc)) from None


def _obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PodError(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def _list(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodError(f"{where}: expected a JSON array, got {_kind(value)}")
    return value


def _str(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PodError(f"{where}: expected a string, got {_kind(value)}")
    return value


_kind = json_kind
