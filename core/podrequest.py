"""Pure: how many ``tke.cloud.tencent.com/eni-ip`` a pod requests, read as
kube-scheduler reads an extended resource: ``max(sum over containers, max
over init containers)``, each container's request defaulting to its limit.
The admission webhook puts ``eni-ip: 1`` on every pod that takes an ENI IP
(``core.podnetwork.takes_eni_ip``), so a request above 0 is how a component
that sees only the Pod object (ipamd, the scheduler extender) tells such a
pod.

Quantities are integers (``"1"``, ``1``); a fraction, a suffix, a negative
number or a field of the wrong type makes the pod unreadable
(``RequestError``): the caller decides what an unreadable pod counts for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.names import RESOURCE_ENI_IP


class RequestError(ValueError):
    """The pod's spec cannot be read as the scheduler would (the field named)."""


def eni_ip_request(spec: Mapping[str, Any] | None, where: str = "spec") -> int:
    """The scheduler's effective eni-ip request of a pod ``spec``; ``where``
    names the spec in errors (the scheduler extender says ``Pod.spec``)."""
    spec = spec or {}
    total = 0
    for i, c in enumerate(_list(spec, "containers", where)):
        total += _container_request(c, f"{where}.containers[{i}]")
    init = 0
    for i, c in enumerate(_list(spec, "initContainers", where)):
        init = max(init, _container_request(c, f"{where}.initContainers[{i}]"))
    return max(total, init)


def _container_request(container: object, where: str) -> int:
    if not isinstance(container, Mapping):
        raise RequestError(f"{where}: expected a JSON object, got {json_kind(container)}")
    resources = _map(container, "resources", f"{where}.resources")
    requests = _map(resources, "requests", f"{where}.resources.requests")
    limits = _map(resources, "limits", f"{where}.resources.limits")
    value = requests.get(RESOURCE_ENI_IP, limits.get(RESOURCE_ENI_IP))
    if value is None:
        return 0
    return parse_count(value, f"{where}.resources[{RESOURCE_ENI_IP}]")


def parse_count(value: object, where: str) -> int:
    """An integer quantity (``"1"``, ``1``, ``"2"``); fractions and suffixes are refused."""
    if isinstance(value, bool):
        raise RequestError(f"{where}: expected an integer quantity, got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise RequestError(f"{where}: expected an integer quantity, got {value!r:.40}")
    if number < 0:
        raise RequestError(f"{where}: negative quantity {number}")
    return number


def _map(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError(f"{where}: expected a JSON object, got {json_kind(value)}")
    return value


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"{where}.{key}: expected a JSON array, got {json_kind(value)}")
    return value


def json_kind(value: object) -> str:
    """What a decoded JSON value is, in words for an error message."""
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
