"""The coordination.k8s.io/v1 Lease record ipamd's leader election uses:
read, create, and compare-and-swap update (resourceVersion precondition).

Every call takes a ``timeout`` (the elector passes what is left of its renew
deadline) and goes through a client of its own that never retries: a retried
request would multiply the bound."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ipamd.kube import paths
from ipamd.kube.api import JSON, KubeApi, KubeError


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str
    duration_s: int
    renew_time: str
    transitions: int
    resource_version: str


def micro_time(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(obj: JSON) -> LeaseRecord:
    spec = obj.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=int(spec.get("leaseDurationSeconds") or 0),
        renew_time=str(spec.get("renewTime") or ""),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str((obj.get("metadata") or {}).get("resourceVersion", "")),
    )


class LeaseClient:
    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self.api = api.without_retries()
        self.namespace = namespace
        self.name = name

    def get(self, *, timeout: float | None = None) -> LeaseRecord | None:
        obj = self.api.get_or_none(paths.lease(self.namespace, self.name), timeout=timeout)
        return _record(obj) if obj else None

    def create(
        self, holder: str, duration_s: int, *, timeout: float | None = None
    ) -> LeaseRecord | None:
        """None when someone else created it first."""
        now = micro_time()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration_s,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            return _record(self.api.create(paths.leases(self.namespace), body, timeout=timeout))
        except KubeError as exc:
            if exc.conflict:
                return None
            raise

    def update(
        self,
        current: LeaseRecord,
        holder: str,
        duration_s: int,
        *,
        acquire: bool,
        timeout: float | None = None,
    ) -> LeaseRecord | None:
        """None when the record changed under us (409)."""
        now = micro_time()
        spec: JSON = {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_s,
            "renewTime": now,
            "leaseTransitions": current.transitions + (1 if acquire else 0),
        }
        if acquire:
            spec["acquireTime"] = now
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": current.resource_version,
            },
            "spec": spec,
        }
        try:
            return _record(
                self.api.replace(paths.lease(self.namespace, self.name), body, timeout=timeout)
            )
        except KubeError as exc:
            if exc.conflict:
                return None
            raise

    def release(self, current: LeaseRecord, holder: str, *, timeout: float | None = None) -> None:
        """Give the lease up at shutdown so a standby takes over at once (a
        compare-and-swap: a Lease someone else wrote since is left alone).
        Raises KubeError when the write fails."""
        if current.holder != holder:
            return
        self.update(current, "", 1, acquire=False, timeout=timeout)
