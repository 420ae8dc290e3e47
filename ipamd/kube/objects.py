"""Writes to built-in objects: the node condition ``TKEENIReady``, the subnet
status ConfigMap for the scheduler extender, and owner look-ups for
``--enable-ownerref``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from core import models as m
from core import names
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError
from ipamd.rules.records import Owner

log = logging.getLogger(__name__)


class ObjectWriter:
    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._conditions: dict[str, tuple[str, str]] = {}
        self._last_status = ""

    def node_condition(self, node: str, ok: bool, reason: str, message: str) -> None:
        """Set ``TKEENIReady`` (only when it changes)."""
        status = "True" if ok else "False"
        if self._conditions.get(node) == (status, reason):
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "status": {
                "conditions": [
                    {
                        "type": names.NODE_CONDITION_ENI_READY,
                        "status": status,
                        "reason": reason,
                        "message": message,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                ]
            }
        }
        try:
            self.api.patch_strategic(paths.node(node) + "/status", body)
            self._conditions[node] = (status, reason)
        except KubeError as exc:
            log.warning(
                "could not set condition %s on node %s: %s",
                names.NODE_CONDITION_ENI_READY,
                node,
                exc,
            )

    def forget_node(self, node: str) -> None:
        self._conditions.pop(node, None)

    def publish_subnets(self, statuses: list[m.SubnetStatus]) -> None:
        text = m.dump_subnet_statuses(statuses)
        if text == self._last_status:
            return
        ns, name = names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": names.COMPONENT_IPAMD},
            },
            "data": {m.SUBNET_STATUS_KEY: text},
        }
        try:
            try:
                self.api.replace(paths.configmap(ns, name), body)
            except KubeError as exc:
                if not exc.not_found:
                    raise
                self.api.create(f"/api/v1/namespaces/{ns}/configmaps", body)
            self._last_status = text
        except KubeError as exc:
            log.warning("could not publish %s/%s: %s", ns, name, exc)

    def owner_exists(self, namespace: str, owner: Owner) -> bool:
        """Whether the owning workload still exists (same uid). Unknown kinds: True."""
        path = paths.owner(owner.api_version, owner.kind, namespace, owner.name)
        if path is None:
            return True
        obj = self.api.get_or_none(path)
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        return (not owner.uid or meta.get("uid") == owner.uid) and not meta.get("deletionTimestamp")
