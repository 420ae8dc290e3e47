"""The node's pod CIDR in the default network's plugins (Global Router style, the guide's
mixed "Method 2" cluster): a delegate config may say ``"subnet": "usePodCidr"`` (the
convention other CNIs use for host-local) and gets the Node's ``spec.podCIDR`` there, so
one DaemonSet configuration gives every node its own range. Pure."""

from __future__ import annotations

import ipaddress
from typing import Any

PLACEHOLDER = "usePodCidr"


class PodCidrError(ValueError):
    pass


def needs_pod_cidr(value: Any) -> bool:
    if isinstance(value, dict):
        return any(needs_pod_cidr(v) for v in value.values())
    if isinstance(value, list):
        return any(needs_pod_cidr(v) for v in value)
    return bool(value == PLACEHOLDER)


def with_pod_cidr(value: Any, cidr: str) -> Any:
    """``value`` with every ``"usePodCidr"`` string replaced by ``cidr`` (checked)."""
    try:
        ipaddress.ip_network(cidr)
    except ValueError as exc:
        raise PodCidrError(f"the node's podCIDR {cidr!r} is not a CIDR: {exc}") from None
    if isinstance(value, dict):
        return {k: with_pod_cidr(v, cidr) for k, v in value.items()}
    if isinstance(value, list):
        return [with_pod_cidr(v, cidr) for v in value]
    return cidr if value == PLACEHOLDER else value
