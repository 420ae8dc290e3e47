"""The extender's list+watch loops (one per kind, ``kit.watch.ListWatch``)
that keep the store current.

Each loop lists (paged), replaces its kind in the store and marks it up, then
watches with bookmarks and relists on 410 Gone. A failing list or watch marks
its kind down (the store turns that into "stale" after a while) and retries
with jittered backoff; the extender keeps answering from the cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from core.names import CRD_API_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP, PLURAL_VPC_IP_CLAIM
from kit.watch import ApiGet, GoneError, Handlers, ListWatch, Timing, WatchError, api_get, stop_all

from .store import (
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_PODS,
    KIND_VPCENIS,
    KIND_VPCIPS,
    Store,
)

log = logging.getLogger("tke_eni_extender.watch")

__all__ = ["GoneError", "Reflector", "Resource", "WatchError", "Watcher", "kube_get", "resources"]


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str  # store kind
    path: str  # collection path
    names: tuple[str, ...] = ()  # keep only these object names (ConfigMaps)
    params: tuple[tuple[str, str], ...] = ()  # list/watch query (field selectors)

    def keeps(self, obj: dict[str, Any]) -> bool:
        if not self.names:
            return True
        meta = obj.get("metadata")
        return isinstance(meta, dict) and meta.get("name") in self.names


BOUND_PENDING = "spec.nodeName!=,status.phase=Pending"


def resources(configmap_namespace: str, configmap_names: tuple[str, ...]) -> list[Resource]:
    crd = f"/apis/{CRD_API_VERSION}"
    return [
        Resource(KIND_NODES, "/api/v1/nodes"),
        Resource(KIND_VPCIPS, f"{crd}/{PLURAL_VPC_IP}"),
        Resource(KIND_VPCENIS, f"{crd}/{PLURAL_VPC_ENI}"),
        Resource(KIND_CLAIMS, f"{crd}/{PLURAL_VPC_IP_CLAIM}"),
        Resource(
            KIND_CONFIGMAPS,
            f"/api/v1/namespaces/{configmap_namespace}/configmaps",
            configmap_names,
        ),
        # pods bound to a node and not running yet: those that may still wait for an
        # IP (store._recount); a pod that starts running leaves the selection (DELETED)
        Resource(KIND_PODS, "/api/v1/pods", params=(("fieldSelector", BOUND_PENDING),)),
    ]


class Reflector(ListWatch):
    """Keeps one kind of the store in step with the API server."""

    def __init__(
        self,
        store: Store,
        get: ApiGet,
        resource: Resource,
        *,
        page_size: int = 500,
        watch_timeout: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        kind = resource.kind

        def replace(items: list[dict[str, Any]]) -> None:
            store.replace(kind, items)
            store.watch_up(kind)

        super().__init__(
            get,
            resource.path,
            Handlers(
                replace=replace,
                added=lambda obj: store.apply(kind, "ADDED", obj),
                modified=lambda obj: store.apply(kind, "MODIFIED", obj),
                deleted=lambda obj: store.apply(kind, "DELETED", obj),
                failed=lambda exc: store.watch_down(kind),
            ),
            name=kind,
            keep=resource.keeps if resource.names else None,
            params=resource.params,
            timing=Timing(
                watch_timeout=watch_timeout,
                page_size=page_size,
                max_backoff=max_backoff,
                first_backoff=min(0.5, max_backoff),
            ),
        )


class Watcher:
    """All reflectors of the extender."""

    def __init__(self, reflectors: list[Reflector]) -> None:
        self._reflectors = reflectors

    def start(self) -> None:
        for r in self._reflectors:
            r.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every watch at once, then wait for them within ONE shared
        deadline. A watch blocked in a read that closing does not interrupt is
        a daemon thread: it does not hold the process's exit."""
        stop_all(self._reflectors, timeout)


def kube_get(kubeconfig: str) -> ApiGet:
    """An ``ApiGet`` over the official client configured from the kubeconfig
    (or the service account)."""
    from kubernetes import client, config

    if kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    return api_get(api)
