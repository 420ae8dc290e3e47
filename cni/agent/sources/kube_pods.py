"""``PodSource`` over the Kubernetes API with a small TTL cache of pods that
exist (a pod's annotations do not change between its sandbox's ADD and DEL);
a cached pod whose UID differs from the one the runtime names is re-read
(a StatefulSet pod recreated under the same name)."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

from kit.kubelite import KubeApiError, KubeLite

from ..pods import PodInfo, PodLookupError

TTL = 30.0


class KubePodSource:
    def __init__(self, api: KubeLite, ttl: float = TTL) -> None:
        self.api = api
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
            pod = self.api.call(
                "GET", f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}", timeout=5
            )
            meta = pod.get("metadata") or {}
            info: PodInfo | None = PodInfo(
                namespace,
                name,
                str(meta.get("uid") or ""),
                {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
                tuple(
                    {
                        "apiVersion": ref.get("apiVersion"),
                        "kind": ref.get("kind"),
                        "name": ref.get("name"),
                        "uid": ref.get("uid"),
                        "controller": bool(ref.get("controller")),
                    }
                    for ref in (meta.get("ownerReferences") or [])
                ),
            )
        except KubeApiError as exc:
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
