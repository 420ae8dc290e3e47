"""Prometheus metrics of the extender (one registry per app, so tests can run
several). Names are documented in docs/scheduler-extender.md."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .store import Store

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tke_eni_extender_requests_total",
            "Extender HTTP requests by verb and status code.",
            ["verb", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tke_eni_extender_request_duration_seconds",
            "Time to answer one extender request (parse, decide, encode).",
            ["verb"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "tke_eni_extender_filter_decisions_total",
            "Nodes judged by filter, by result (passed / failed / unresolvable) and reason code.",
            ["result", "reason"],
            registry=self.registry,
        )
        self.stale_answers = Counter(
            "tke_eni_extender_stale_answers_total",
            "Answers given while at least one watch cache was stale, by stale kind.",
            ["verb", "kind"],
            registry=self.registry,
        )
        self.tls_refused = Counter(
            "tke_eni_extender_tls_refused_connections_total",
            "Connections refused before a request: failed TLS handshake (no or untrusted "
            "client certificate, not TLS), handshake past --read-timeout, name not in "
            "--client-names. Connections that go silent are closed by the read timeout "
            "without a count.",
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "tke_eni_extender_tls_reloads_total",
            "Reloads of the certificate files after a change, by result (ok / failed: "
            "the previous certificate stays).",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(_CacheCollector(store))


class _CacheCollector(Collector):
    """Cache health read at scrape time from the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = self._store.kind_states()
        stale = set(self._store.stale_kinds())
        synced = GaugeMetricFamily(
            "tke_eni_extender_cache_synced", "1 once the kind was listed.", labels=["kind"]
        )
        up = GaugeMetricFamily(
            "tke_eni_extender_cache_watch_up",
            "1 while the kind's watch is connected.",
            labels=["kind"],
        )
        stale_g = GaugeMetricFamily(
            "tke_eni_extender_cache_stale",
            "1 while the kind's watch has been down longer than --stale-after.",
            labels=["kind"],
        )
        objects = GaugeMetricFamily(
            "tke_eni_extender_cache_objects", "Objects in the cache.", labels=["kind"]
        )
        last = GaugeMetricFamily(
            "tke_eni_extender_cache_last_event_timestamp_seconds",
            "Unix time of the kind's last list or watch event.",
            labels=["kind"],
        )
        for kind, s in states.items():
            synced.add_metric([kind], float(s.synced))
            up.add_metric([kind], float(s.up))
            stale_g.add_metric([kind], float(kind in stale))
            objects.add_metric([kind], float(s.objects))
            last.add_metric([kind], s.last_event)
        yield from (synced, up, stale_g, objects, last)
