"""Prometheus metrics of the cloud layer (process-wide, default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLS = Counter("tke_cloud_api_calls_total", "Cloud API requests sent", ["action"])
ERRORS = Counter(
    "tke_cloud_api_errors_total",
    "Cloud API requests that failed, by error code",
    ["action", "code"],
)
RETRIES = Counter("tke_cloud_api_retries_total", "Cloud API retries", ["action", "code"])
LATENCY = Histogram(
    "tke_cloud_api_latency_seconds",
    "Cloud API request latency (one HTTP round trip)",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
THROTTLE_WAIT = Counter(
    "tke_cloud_ratelimit_wait_seconds_total",
    "Seconds spent waiting for the client-side limiter",
    ["action"],
)
TASK_WAIT = Histogram(
    "tke_cloud_task_wait_seconds",
    "Time from an async call to its task's end",
    ["action", "status"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
