"""The agent's own Node, read once: its ``spec.podCIDR`` for the default network's
plugins (cni.agent.podcidr). Needs ``nodes get`` (deploy/agent/rbac.yaml)."""

from __future__ import annotations

import logging
import time
from typing import Any

from kubernetes import client

log = logging.getLogger(__name__)


def wait_pod_cidr(api: Any, node_name: str, timeout: float = 120.0,
                  interval: float = 2.0) -> str:
    """The Node's podCIDR, waiting (bounded) for the node IPAM controller to set it.
    RuntimeError with what was seen when it does not come."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    last = "not read yet"
    while True:
        try:
            node = core.read_node(node_name)
            cidr = str((node.spec.pod_cidr if node.spec else "") or "")
            if cidr:
                return cidr
            last = "spec.podCIDR is empty (is node IPAM on: --allocate-node-cidrs?)"
        except client.ApiException as exc:
            last = f"GET node {node_name}: HTTP {exc.status} {exc.reason}"
        except OSError as exc:
            last = f"GET node {node_name}: {exc}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"the default network's plugins ask for usePodCidr but node "
                               f"{node_name} has no podCIDR after {timeout:.0f}s: {last}")
        log.info("waiting for the node's podCIDR", extra={"node": node_name, "last": last})
        time.sleep(interval)
