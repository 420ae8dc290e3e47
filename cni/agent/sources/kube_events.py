"""Kubernetes Events on this node's Node object (``kubectl describe node``),
for what an operator must see: the agent's state could not be read, live
pod links it cannot account for, the state rebuilt. Best effort and
bounded: an Event that cannot be written is logged, never fatal. Like the
kubelet, the Node reference carries the node name as its UID (the agent may
not read Node objects)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kit.kubelite import KubeLite

log = logging.getLogger(__name__)
COMPONENT = "tke-eni-agent"
TIMEOUT = 5.0  # seconds per API call


class NodeEvents:
    def __init__(self, api: KubeLite, node_name: str, namespace: str = "default") -> None:
        self.api = api
        self.node_name = node_name
        self.namespace = namespace

    def __call__(self, kind: str, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: Any = {
            "metadata": {"generateName": f"{self.node_name}.", "namespace": self.namespace},
            "involvedObject": {"kind": "Node", "name": self.node_name, "uid": self.node_name},
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.api.call(
                "POST", f"/api/v1/namespaces/{quote(self.namespace)}/events", body=body,
                timeout=TIMEOUT,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - an Event is never worth failing for
            log.warning("event not recorded", extra={"reason": reason, "error": str(exc)})
