"""ipamd's subnet status (ConfigMap ``kube-system/tke-eni-ipamd-status``, key
``subnets.json``: ``core.models.SubnetStatus`` list) as the node agent sees
it: one ConfigMap, listed and watched with the field selector
``metadata.name=<name>`` — the only form of list/watch that RBAC's
``resourceNames`` allows, so the agent can read this ConfigMap and no other
(the loop: ``kit.watch``, relisting on 410 and backing off on errors).

``current()`` is ``None`` while the ConfigMap does not exist (ipamd not
running yet; a cluster without ipamd): the capacity rule reads that as "not
exhausted". A ConfigMap whose ``subnets.json`` does not parse is logged and
the previous value kept."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from core.models import SUBNET_STATUS_KEY, SubnetStatus, load_subnet_statuses
from kit.kubelite import KubeLite
from kit.watch import Handlers, ListWatch, Timing

log = logging.getLogger(__name__)
WATCH_TIMEOUT = 300


class KubeSubnetStatusWatch:
    def __init__(
        self,
        api: KubeLite,
        namespace: str,
        name: str,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self.selector = f"metadata.name={name}"
        self._current: list[SubnetStatus] | None = None
        self._lock = threading.Lock()
        self.watch = ListWatch(
            api.get,
            f"/api/v1/namespaces/{namespace}/configmaps",
            Handlers(
                replace=self._replace,
                added=self._apply,
                modified=self._apply,
                deleted=lambda obj: self._apply(None),
            ),
            name="subnet-status",
            params=[("fieldSelector", self.selector)],
            keep=lambda obj: (obj.get("metadata") or {}).get("name") == name,
            timing=Timing(watch_timeout=WATCH_TIMEOUT, first_backoff=1.0, max_backoff=30.0),
        )

    def current(self) -> list[SubnetStatus] | None:
        with self._lock:
            return None if self._current is None else list(self._current)

    def _replace(self, items: list[dict[str, Any]]) -> None:
        self._apply(items[0] if items else None)

    def _apply(self, obj: dict[str, Any] | None) -> None:
        """``obj``: the ConfigMap (JSON), or None when it is gone."""
        statuses: list[SubnetStatus] | None
        if obj is None:
            statuses = None
        else:
            text = (obj.get("data") or {}).get(SUBNET_STATUS_KEY)
            try:
                statuses = load_subnet_statuses(text or "")
            except ValueError as exc:
                log.warning(
                    "subnet status unreadable; keeping the previous one",
                    extra={"configmap": f"{self.namespace}/{self.name}", "error": str(exc)},
                )
                return
        with self._lock:
            changed = statuses != self._current
            self._current = statuses
        if changed:
            log.info(
                "subnet status",
                extra={
                    "configmap": f"{self.namespace}/{self.name}",
                    "subnets": None
                    if statuses is None
                    else [f"{s.subnet_id}/{s.zone}/{s.state}/{s.available}" for s in statuses],
                },
            )
            self.on_change()

    def start(self, sync_timeout: float = 10.0) -> None:
        """Start the list+watch (``kit.watch``); wait (bounded) for the first list."""
        self.watch.start()
        if not self.watch.synced.wait(sync_timeout):
            log.warning("subnet status not listed yet; treating subnets as not exhausted")

    def stop(self, timeout: float = 5.0) -> None:
        self.watch.stop(timeout)
