"""Prometheus metrics of the cloud layer, registered into the registry the
daemon gives the adapter (the one it serves on ``/metrics``). One set per
registry: asking twice for the same registry returns the same set."""

from __future__ import annotations

import threading
from typing import ClassVar

from prometheus_client import CollectorRegistry, Counter, Histogram


class CloudMetrics:
    _by_registry: ClassVar[dict[int, tuple[CollectorRegistry, CloudMetrics]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.registry = registry
        self.calls = Counter(
            "tke_cloud_api_calls_total", "Cloud API requests sent", ["action"], registry=r
        )
        self.errors = Counter(
            "tke_cloud_api_errors_total",
            "Cloud API requests that failed, by error code",
            ["action", "code"],
            registry=r,
        )
        self.retries = Counter(
            "tke_cloud_api_retries_total", "Cloud API retries", ["action", "code"], registry=r
        )
        self.latency = Histogram(
            "tke_cloud_api_latency_seconds",
            "Cloud API request latency (one HTTP round trip)",
            ["action"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.throttle_wait = Counter(
            "tke_cloud_ratelimit_wait_seconds_total",
            "Seconds spent waiting for the client-side limiter",
            ["action"],
            registry=r,
        )
        self.task_wait = Histogram(
            "tke_cloud_task_wait_seconds",
            "Time from an async call to its task's end",
            ["action", "status"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )

    @classmethod
    def into(cls, registry: CollectorRegistry | None) -> CloudMetrics:
        """The cloud metrics registered in ``registry`` (created on first use);
        ``None``: a private registry nobody serves (tests, tools)."""
        if registry is None:
            return cls(CollectorRegistry())
        with cls._lock:
            known = cls._by_registry.get(id(registry))
            if known is None or known[0] is not registry:
                known = (registry, cls(registry))
                cls._by_registry[id(registry)] = known
            return known[1]
