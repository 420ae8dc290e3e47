"""Pure: what the webhook does to one admission request, and the JSONPatch.

A pod CREATE that takes an ENI IP (``core.podnetwork.takes_eni_ip``, the
agent's rule) and where no container (init containers included) asks for
``tke.cloud.tencent.com/eni-ip`` in its requests or limits gets
``eni-ip: "1"`` added to the requests and the limits of its first container.
Such a pod annotated ``tke.cloud.tencent.com/eip-attributes`` (a pod EIP,
``core.eip``) also gets ``tke.cloud.tencent.com/eip: "1"`` beside it, unless a
container already asks for it.
Every other request is allowed unchanged. Workload templates (Deployment,
StatefulSet, ...) are never patched: they only get warnings
(``webhook.warnings``), so ``kubectl apply`` shows them.

The outcome names why (metrics label, log field); the patch is RFC 6902 with
RFC 6901 pointers (``/`` in the resource name escaped as ``~1``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.eip import ANNOTATION_EIP_ATTRIBUTES, RESOURCE_EIP
from core.names import RESOURCE_ENI_IP
from core.podnetwork import takes_eni_ip

from .review import Request

QUANTITY = "1"

# outcomes (the ``outcome`` label of tke_eni_webhook_admissions_total)
PATCHED = "patched"
ALREADY_REQUESTS = "already-requests"
HOST_NETWORK = "host-network"
NO_ENI_IP = "no-eni-ip"  # Method 2 and the pod does not name tke-route-eni
NOT_CREATE = "not-create"
NOT_A_POD = "not-a-pod"
WORKLOAD = "workload"  # a pod template: warnings only
NO_CONTAINERS = "no-containers"
MALFORMED = "malformed"  # set by the app for a ReviewError
OUTCOMES = (PATCHED, ALREADY_REQUESTS, HOST_NETWORK, NO_ENI_IP, NOT_CREATE, NOT_A_POD,
            WORKLOAD, NO_CONTAINERS, MALFORMED)

#: kinds whose pod template is read for warnings: kind -> path of the template
WORKLOAD_TEMPLATES: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: str
    patch: tuple[dict[str, Any], ...] = ()


def pointer_token(name: str) -> str:
    """One RFC 6901 reference token: ``~`` → ``~0``, ``/`` → ``~1``."""
    return name.replace("~", "~0").replace("/", "~1")


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _containers(spec: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = spec.get(key)
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [c for c in value if isinstance(c, Mapping)]


def asks_for(spec: Mapping[str, Any], resource: str) -> bool:
    """Some container or init container has ``resource`` in requests or limits."""
    for c in _containers(spec, "initContainers") + _containers(spec, "containers"):
        res = _mapping(c.get("resources"))
        if resource in _mapping(res.get("requests")) or resource in _mapping(res.get("limits")):
            return True
    return False


def asks_for_eni_ip(spec: Mapping[str, Any]) -> bool:
    return asks_for(spec, RESOURCE_ENI_IP)


def add_request_patch(
    first: Mapping[str, Any], resources: Sequence[str] = (RESOURCE_ENI_IP,)
) -> tuple[dict[str, Any], ...]:
    """JSONPatch adding ``resources`` (1 each) to requests and limits of
    ``containers[0]``: a missing (or null) ``resources``/``requests``/``limits``
    is added whole, an existing map gets one key per resource (so nothing the
    user wrote is replaced)."""
    base = "/spec/containers/0/resources"
    res = first.get("resources")
    whole = dict.fromkeys(resources, QUANTITY)
    if not isinstance(res, Mapping):
        return ({"op": "add", "path": base, "value": {"requests": whole, "limits": dict(whole)}},)
    ops: list[dict[str, Any]] = []
    for key in ("requests", "limits"):
        if isinstance(res.get(key), Mapping):
            ops.extend({"op": "add", "path": f"{base}/{key}/{pointer_token(name)}",
                        "value": QUANTITY} for name in resources)
        else:
            ops.append({"op": "add", "path": f"{base}/{key}", "value": dict(whole)})
    return tuple(ops)


def pod_decision(pod: Mapping[str, Any], *, eni_only_cluster: bool) -> Decision:
    """The decision for a pod object being created."""
    spec = _mapping(pod.get("spec"))
    annotations = _mapping(_mapping(pod.get("metadata")).get("annotations"))
    if spec.get("hostNetwork") is True:
        return Decision(HOST_NETWORK)
    if not takes_eni_ip(annotations, host_network=False, eni_only_cluster=eni_only_cluster):
        return Decision(NO_ENI_IP)
    wanted = [] if asks_for_eni_ip(spec) else [RESOURCE_ENI_IP]
    if ANNOTATION_EIP_ATTRIBUTES in annotations and not asks_for(spec, RESOURCE_EIP):
        wanted.append(RESOURCE_EIP)
    if not wanted:
        return Decision(ALREADY_REQUESTS)
    containers = _containers(spec, "containers")
    if not containers:
        return Decision(NO_CONTAINERS)  # the API server refuses such a pod itself
    return Decision(PATCHED, add_request_patch(containers[0], wanted))


def is_pod(req: Request) -> bool:
    return req.kind.group == "" and req.kind.kind == "Pod" and not req.sub_resource


def template_of(req: Request) -> Mapping[str, Any] | None:
    """The pod template of a workload request (None for other kinds)."""
    path = WORKLOAD_TEMPLATES.get(req.kind.kind)
    if path is None or req.kind.group not in ("apps", "batch") or req.sub_resource:
        return None
    node: object = req.obj
    for key in path:
        node = _mapping(node).get(key)
    return node if isinstance(node, Mapping) else None


def decide(req: Request, *, eni_only_cluster: bool) -> Decision:
    if is_pod(req):
        if req.operation != "CREATE":
            return Decision(NOT_CREATE)
        return pod_decision(req.obj, eni_only_cluster=eni_only_cluster)
    if template_of(req) is not None:
        return Decision(WORKLOAD)
    return Decision(NOT_A_POD)
