"""``PodSource`` over the Kubernetes API with a small TTL cache of pods that
exist (a pod's annotations do not change between its sandbox's ADD and DEL);
a cached pod whose UID differs from the one the runtime names is re-read
(a StatefulSet pod recreated under the same name)."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client

from ..pods import PodInfo, PodLookupError

TTL = 30.0


class KubePodSource:
    def __init__(self, api_client: Any, ttl: float = TTL) -> None:
        self.api = client.CoreV1Api(api_client)
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, PodInfo]] = {}
        self._lock = threading.Lock()

    def get(self, namespace: str, name: str, uid: str = "") -> PodInfo | None:
        key = (namespace, name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl and (not uid or hit[1].uid == uid):
            return hit[1]
        try:
            pod = self.api.read_namespaced_pod(name, namespace, _request_timeout=5)
            meta = pod.metadata
            info: PodInfo | None = PodInfo(
                namespace,
                name,
                (meta.uid if meta else "") or "",
                dict((meta.annotations if meta else None) or {}),
                tuple(
                    {
                        "apiVersion": ref.api_version,
                        "kind": ref.kind,
                        "name": ref.name,
                        "uid": ref.uid,
                        "controller": bool(ref.controller),
                    }
                    for ref in ((meta.owner_references if meta else None) or [])
                ),
            )
        except client.ApiException as exc:
            if exc.status != 404:
                raise PodLookupError(
                    f"GET pod {namespace}/{name}: {exc.status} {exc.reason}"
                ) from exc
            info = None
        except Exception as exc:  # connection refused, timeout...
            raise PodLookupError(f"GET pod {namespace}/{name}: {exc}") from exc
        if info is None:
            return None  # not cached: it may be created any moment
        with self._lock:
            self._cache[key] = (now, info)
            if len(self._cache) > 4096:
                self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.ttl}
        return info
