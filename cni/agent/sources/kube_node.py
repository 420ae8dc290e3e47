"""The agent's own Node, read once: its ``spec.podCIDR`` for the default network's
plugins (cni.agent.podcidr). Needs ``nodes get`` (deploy/agent/rbac.yaml)."""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from kit.kubelite import KubeApiError, KubeLite

log = logging.getLogger(__name__)


def wait_pod_cidr(
    api: KubeLite, node_name: str, timeout: float = 120.0, interval: float = 2.0
) -> str:
    """The Node's podCIDR, waiting (bounded) for the node IPAM controller to set it.
    RuntimeError with what was seen when it does not come."""
    deadline = time.monotonic() + timeout
    last = "not read yet"
    while True:
        try:
            node = api.call("GET", f"/api/v1/nodes/{quote(node_name)}")
            cidr = str((node.get("spec") or {}).get("podCIDR") or "")
            if cidr:
                return cidr
            last = "spec.podCIDR is empty (is node IPAM on: --allocate-node-cidrs?)"
        except KubeApiError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the default network's plugins ask for usePodCidr but node "
                f"{node_name} has no podCIDR after {timeout:.0f}s: {last}"
            )
        log.info("waiting for the node's podCIDR", extra={"node": node_name, "last": last})
        time.sleep(interval)
