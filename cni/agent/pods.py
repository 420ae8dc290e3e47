"""The agent's port for pod lookups (annotations decide the network; a static
pod's claim is named as the pod) and the implementations that need no
Kubernetes. The Kubernetes one lives in ``kube_pods``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    uid: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    # metadata.ownerReferences as JSON dicts (core.claimpolicy: static IPs are
    # for StatefulSet pods)
    owner_references: tuple[dict[str, Any], ...] = ()


class PodLookupError(Exception):
    """The pod could not be read (API unreachable...): the caller answers
    CNI code 11, the runtime retries."""


class PodSource(Protocol):
    def get(self, namespace: str, name: str, uid: str = "") -> PodInfo | None:
        """The pod, or None when it does not exist. PodLookupError when unknown.
        ``uid`` (from CNI_ARGS, when the runtime gives it) lets a cache notice
        that a pod of the same name was recreated."""
        ...


class FilePodSource:
    """Pods from a JSON file ``{"<ns>/<name>": {"uid": ..., "annotations": {...},
    "ownerReferences": [...]}}``,
    re-read when it changes. For tests and clusters without API access."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._pods: dict[str, dict[str, Any]] = {}

    def get(self, namespace: str, name: str, uid: str = "") -> PodInfo | None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as fh:
                    data = json.load(fh)
                self._pods = data if isinstance(data, dict) else {}
                self._stamp = stamp
        except FileNotFoundError:
            self._pods = {}
        except (OSError, ValueError) as exc:
            raise PodLookupError(f"pod file {self.path}: {exc}") from exc
        entry = self._pods.get(f"{namespace}/{name}")
        if not isinstance(entry, dict):
            return None
        annotations = entry.get("annotations") or {}
        owners = entry.get("ownerReferences") or []
        return PodInfo(
            namespace,
            name,
            str(entry.get("uid", "")),
            dict(annotations),
            tuple(o for o in owners if isinstance(o, dict)) if isinstance(owners, list) else (),
        )
