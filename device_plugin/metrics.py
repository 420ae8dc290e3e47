"""Prometheus metrics of one plugin instance, in its own registry (so several
instances can live in one process: tests, or a node agent embedding it)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from device_plugin.state import Snapshot

PREFIX = "tke_eni_device_plugin"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.capacity = Gauge(
            f"{PREFIX}_capacity", "Devices advertised (healthy + unhealthy)", registry=r
        )
        self.healthy = Gauge(f"{PREFIX}_healthy_devices", "Devices advertised Healthy", registry=r)
        self.registered = Gauge(
            f"{PREFIX}_registered", "1 while registered with the kubelet", registry=r
        )
        self.limits_fallback = Gauge(
            f"{PREFIX}_limits_table_fallback",
            "1 while the limits come from the built-in table because the API failed",
            registry=r,
        )
        self.allocations = Counter(
            f"{PREFIX}_allocated_devices", "Devices handed out by Allocate", registry=r
        )
        self.allocate_requests = Counter(
            f"{PREFIX}_allocate_requests", "Allocate calls by result", ["result"], registry=r
        )
        self.allocate_seconds = Histogram(
            f"{PREFIX}_allocate_seconds",
            "Allocate handling time",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05),
            registry=r,
        )
        self.registrations = Counter(
            f"{PREFIX}_registrations", "Successful Register calls", registry=r
        )
        self.reregistrations = Counter(
            f"{PREFIX}_reregistrations",
            "Registrations after the first (kubelet or plugin socket restarts)",
            registry=r,
        )
        self.registration_failures = Counter(
            f"{PREFIX}_registration_failures", "Failed Register attempts", registry=r
        )
        self.list_and_watch_sends = Counter(
            f"{PREFIX}_list_and_watch_sends", "ListAndWatch messages sent", registry=r
        )
        self.limits_api_errors = Counter(
            f"{PREFIX}_limits_api_errors", "Failed DescribeNetworkInterfaceLimit calls", registry=r
        )

    def on_capacity(self, snap: Snapshot) -> None:
        self.capacity.set(snap.devices.capacity)
        self.healthy.set(snap.devices.healthy)
