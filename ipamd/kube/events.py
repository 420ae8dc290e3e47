"""Kubernetes events on the objects users look at (pods, nodes, the
ConfigMap), de-duplicated: the same (object, reason, message) within a minute
bumps nothing and costs no API call."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from core import names
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"


def node_ref(name: str) -> ObjectRef:
    return ObjectRef("Node", name, "", name)


def pod_ref(namespace: str, name: str, uid: str = "") -> ObjectRef:
    return ObjectRef("Pod", name, namespace, uid)


def configmap_ref() -> ObjectRef:
    return ObjectRef("ConfigMap", names.CONFIGMAP_NAME, names.CONFIGMAP_NAMESPACE)


class EventRecorder:
    def __init__(self, api: KubeApi | None, *, component: str = names.COMPONENT_IPAMD) -> None:
        self.api = api
        self.component = component
        self._recent: dict[tuple[ObjectRef, str, str], float] = {}
        self._lock = threading.Lock()

    def emit(self, ref: ObjectRef, etype: str, reason: str, message: str) -> None:
        now = time.monotonic()
        key = (ref, reason, message)
        with self._lock:
            if now - self._recent.get(key, -1e9) < 60:
                return  # sent (and logged) within the last minute
            self._recent[key] = now
            if len(self._recent) > 10000:
                self._recent = {k: v for k, v in self._recent.items() if now - v < 60}
        level = logging.WARNING if etype == WARNING else logging.INFO
        where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
        log.log(level, "event %s %s %s: %s", ref.kind, where, reason, message)
        if self.api is None:
            return
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ns = ref.namespace or "default"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": {
                "kind": ref.kind,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
                "apiVersion": ref.api_version,
            },
            "reason": reason,
            "message": message[:1024],
            "type": etype,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        try:
            self.api.create(paths.events(ns), body)
        except KubeError as exc:
            log.warning("could not record event %s on %s/%s: %s", reason, ref.kind, ref.name, exc)
