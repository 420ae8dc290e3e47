"""ipamd's subnet status (ConfigMap ``kube-system/tke-eni-ipamd-status``, key
``subnets.json``: ``core.models.SubnetStatus`` list) as the node agent sees
it: one ConfigMap, listed and watched with the field selector
``metadata.name=<name>`` — the only form of list/watch that RBAC's
``resourceNames`` allows, so the agent can read this ConfigMap and no other.

``current()`` is ``None`` while the ConfigMap does not exist (ipamd not
running yet; a cluster without ipamd): the capacity rule reads that as "not
exhausted". A ConfigMap whose ``subnets.json`` does not parse is logged and
the previous value kept."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

from core.models import SUBNET_STATUS_KEY, SubnetStatus, load_subnet_statuses

log = logging.getLogger(__name__)
WATCH_TIMEOUT = 300


class KubeSubnetStatusWatch:
    def __init__(
        self,
        api_client: Any,
        namespace: str,
        name: str,
        on_change: Callable[[], object] = lambda: None,
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.name = name
        self.on_change = on_change
        self.selector = f"metadata.name={name}"
        self._current: list[SubnetStatus] | None = None
        self._lock = threading.Lock()
        self._listed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: watch.Watch | None = None

    def current(self) -> list[SubnetStatus] | None:
        with self._lock:
            return None if self._current is None else list(self._current)

    def _apply(self, obj: Any | None) -> None:
        """``obj``: the ConfigMap (a V1ConfigMap), or None when it is gone."""
        statuses: list[SubnetStatus] | None
        if obj is None:
            statuses = None
        else:
            text = (obj.data or {}).get(SUBNET_STATUS_KEY)
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

    def _sync(self) -> None:
        """List, then watch from the list's resourceVersion; re-list on any error."""
        while not self._stop.is_set():
            try:
                listed = self.core.list_namespaced_config_map(
                    self.namespace, field_selector=self.selector
                )
                items = [i for i in listed.items if i.metadata and i.metadata.name == self.name]
                self._apply(items[0] if items else None)
                self._listed.set()
                w = watch.Watch()  # type: ignore[no-untyped-call]
                self._watch = w
                for event in w.stream(  # type: ignore[no-untyped-call]
                    self.core.list_namespaced_config_map,
                    self.namespace,
                    field_selector=self.selector,
                    resource_version=listed.metadata.resource_version if listed.metadata else None,
                    timeout_seconds=WATCH_TIMEOUT,
                ):
                    if self._stop.is_set():
                        return
                    if event["type"] == "DELETED":
                        self._apply(None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._apply(event["object"])
            except Exception as exc:  # noqa: BLE001 - API down or watch expired: list again
                if self._stop.is_set():
                    return
                log.warning(
                    "subnet status watch failed, re-listing",
                    extra={"configmap": f"{self.namespace}/{self.name}", "error": str(exc)},
                )
                self._stop.wait(2.0)

    def start(self, sync_timeout: float = 10.0) -> None:
        """Start the watch; wait (bounded) for the first list."""
        self._thread = threading.Thread(target=self._sync, name="watch-subnet-status", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + sync_timeout
        if not self._listed.wait(max(0.0, deadline - time.monotonic())):
            log.warning("subnet status not listed yet; treating subnets as not exhausted")

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
