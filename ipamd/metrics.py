"""Prometheus metrics of ipamd (one registry per process, served on
``--metrics-address``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

IPS = Gauge("tke_ipamd_ips", "VpcIPs by subnet and phase", ["subnet", "phase"], registry=REGISTRY)
ENIS = Gauge("tke_ipamd_enis", "VpcENIs by subnet", ["subnet"], registry=REGISTRY)
CLAIMS = Gauge("tke_ipamd_claims", "VpcIPClaims by phase", ["phase"], registry=REGISTRY)
NODES = Gauge("tke_ipamd_nodes", "nodes known to ipamd", registry=REGISTRY)
AWAITING = Gauge(
    "tke_ipamd_awaiting_ips",
    "IPs owed to pods bound to a node that wait for one (Pending, eni-ip requested, no IP "
    "yet), summed over the nodes at their last pool pass; the warm pool grows by them",
    registry=REGISTRY,
)
ENIS_AHEAD = Counter(
    "tke_ipamd_enis_attached_ahead_total",
    "ENIs attached ahead with no secondary IP, whatever the warm targets, because a node "
    "that can grow had no room left on its ENIs and no idle IP (ipamd.rules.pool.needs_ahead_eni)",
    registry=REGISTRY,
)
LEADER = Gauge("tke_ipamd_leader", "1 while this process is the leader", registry=REGISTRY)
CLOUD_CALLS = Counter(
    "tke_ipamd_cloud_calls_total",
    "cloud API calls by action and result",
    ["action", "result"],
    registry=REGISTRY,
)
RECONCILE_FIXES = Counter(
    "tke_ipamd_reconcile_fixes_total",
    "drift corrected by the reconcile loop",
    ["kind"],
    registry=REGISTRY,
)
ALLOCATION = Histogram(
    "tke_ipamd_allocation_seconds",
    "time to assign IPs / move a claimed IP",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
    registry=REGISTRY,
)
CLAIM_CONFLICTS = Counter(
    "tke_ipamd_claim_conflicts_total",
    "static-IP moves refused: the address is not recorded as the claim's (record) "
    "or is held by an ENI of another cluster (foreign-eni)",
    ["kind"],
    registry=REGISTRY,
)
FENCED_WRITES = Counter(
    "tke_ipamd_fenced_cloud_writes_total",
    "cloud writes refused because this process was not the leader (Lease lost or not "
    "renewed within the renew deadline)",
    ["action"],
    registry=REGISTRY,
)
LEAKED_ENIS = Counter(
    "tke_ipamd_leaked_enis_total",
    "leaked ENIs (our cluster and creator tags, our VPC, detached or on a gone instance, "
    "older than --leaked-eni-min-age) deleted, or reported under --leaked-eni-dry-run",
    ["result"],
    registry=REGISTRY,
)
WORK_ERRORS = Counter(
    "tke_ipamd_work_errors_total", "failed work items by kind", ["kind"], registry=REGISTRY
)
SUBNETS = Gauge("tke_ipamd_subnets", "configured subnets by state", ["state"], registry=REGISTRY)
