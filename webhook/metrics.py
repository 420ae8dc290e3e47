"""Prometheus metrics of the webhook (one registry per app, so tests can run
several). Names are documented in docs/webhook.md."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from .decide import OUTCOMES

#: admission work is sub-millisecond; the API server's budget is timeoutSeconds
BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.admissions = Counter(
            "tke_eni_webhook_admissions_total",
            "Admission requests answered, by outcome (patched, already-requests, "
            "host-network, no-eni-ip, not-create, not-a-pod, workload, no-containers, "
            "malformed).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.admissions.labels(outcome)
        self.warnings = Counter(
            "tke_eni_webhook_warnings_total",
            "Warnings returned to the client (claim annotations that will not work as "
            "written).",
            registry=self.registry,
        )
        self.latency = Histogram(
            "tke_eni_webhook_admission_duration_seconds",
            "Time to answer one AdmissionReview inside the webhook (read, parse, decide, "
            "encode).",
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.http_errors = Counter(
            "tke_eni_webhook_http_errors_total",
            "Requests answered with an HTTP error instead of an AdmissionReview, by code "
            "(400 unreadable, 413 too large, 415 not JSON).",
            ["code"],
            registry=self.registry,
        )
        self.tls_refused = Counter(
            "tke_eni_webhook_tls_refused_connections_total",
            "Connections closed before a request (failed or slow TLS handshake).",
            registry=self.registry,
        )
        self.tls_handshakes = Counter(
            "tke_eni_webhook_tls_handshakes_total",
            "TLS connections established (the API server reuses connections: a rate close "
            "to the admission rate means connection churn).",
            registry=self.registry,
        )
        self.tls_reloads = Counter(
            "tke_eni_webhook_tls_reloads_total",
            "Reloads of the certificate files after a change, by result (ok / failed: the "
            "previous certificate stays).",
            ["result"],
            registry=self.registry,
        )
