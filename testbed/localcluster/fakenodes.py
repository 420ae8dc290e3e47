"""Fake Node objects managed by kwok."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KWOK_LABEL = "type"
KWOK_LABEL_VALUE = "kwok"
KWOK_SELECTOR = f"{KWOK_LABEL}={KWOK_LABEL_VALUE}"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
DEFAULT_ALLOCATABLE: Mapping[str, str] = {"cpu": "32", "memory": "256Gi", "pods": "110"}


@dataclass(frozen=True)
class FakeNode:
    """A node kwok keeps Ready. ``allocatable`` adds to (or overrides) the defaults."""

    name: str
    allocatable: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        resources = {**DEFAULT_ALLOCATABLE, **self.allocatable}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent",
                    KWOK_LABEL: KWOK_LABEL_VALUE, **self.labels,
                },
                "annotations": {KWOK_ANNOTATION: "fake", **self.annotations},
            },
            "spec": {},
            "status": {"capacity": dict(resources), "allocatable": dict(resources)},
        }


def numbered_nodes(count: int, prefix: str = "kwok-node-",
                   allocatable: Mapping[str, str] | None = None) -> list[FakeNode]:
    return [FakeNode(name=f"{prefix}{i}", allocatable=dict(allocatable or {}))
            for i in range(count)]
