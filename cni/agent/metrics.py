"""Prometheus metrics of the agent, in a registry of its own (several agents
can live in one test process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "tke_eni_agent"


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_cni_requests", "CNI calls by verb and result", ["verb", "result"], registry=r
        )
        self.latency = Histogram(
            f"{PREFIX}_cni_request_seconds",
            "CNI call handling time in the agent",
            ["verb"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.errors = Counter(
            f"{PREFIX}_cni_errors", "CNI errors by verb and code", ["verb", "code"], registry=r
        )
        self.pool = Gauge(f"{PREFIX}_pool_ips", "This node's IPs by phase", ["phase"], registry=r)
        self.drift = Counter(
            f"{PREFIX}_drift_corrections",
            "Host network drift corrected, by kind",
            ["kind"],
            registry=r,
        )
        self.reconciles = Counter(
            f"{PREFIX}_reconcile_loops", "Reconcile loop runs by result", ["result"], registry=r
        )
        self.gc = Counter(
            f"{PREFIX}_gc_released",
            "Allocations collected (runtime no longer knows them)",
            ["reason"],
            registry=r,
        )
        self.checkpoint_unreadable = Counter(
            f"{PREFIX}_checkpoint_unreadable",
            "Starts with an unreadable checkpoint (state rebuilt from the live links)",
            registry=r,
        )
        self.recovered = Counter(
            f"{PREFIX}_recovered_allocations",
            "Allocations rebuilt from the live links (checkpoint unreadable or missing)",
            registry=r,
        )
        self.unexplained = Gauge(
            f"{PREFIX}_recovery_unexplained_links",
            "Live pod links the rebuild could not account for (ADD is refused while > 0)",
            registry=r,
        )
        self.resent = Counter(
            f"{PREFIX}_usage_resent",
            "IPs whose usage the full pass re-sent because the API no longer held it",
            registry=r,
        )
        self.refused = Counter(
            f"{PREFIX}_socket_refused",
            "Connections to the CNI socket refused at the connection cap (CNI code 11)",
            registry=r,
        )
        self.reports = Counter(
            f"{PREFIX}_usage_reports",
            "Usage reports to the IP source, by result",
            ["result"],
            registry=r,
        )
        self.usable_ips = Gauge(
            f"{PREFIX}_device_plugin_usable_ips",
            "warm IPs (usable now without a refill) in the device plugin's capacity file",
            registry=r,
        )
        self.floor_reuses = Counter(
            f"{PREFIX}_cooldown_floor_reuses",
            "Cooling IPs reused past --cooldown-floor because the node had no other free IP",
            registry=r,
        )
        self.refill_waits = Counter(
            f"{PREFIX}_refill_waits",
            "ADDs that found no free IP and waited for one (--refill-wait), by outcome",
            ["outcome"],
            registry=r,
        )
        self.capacity_writes = Counter(
            f"{PREFIX}_device_plugin_capacity_writes",
            "Writes of the device plugin's capacity file, by result",
            ["result"],
            registry=r,
        )
