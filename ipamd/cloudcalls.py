"""The cloud port as ipamd uses it: every call counted in metrics, throttling
and transient errors retried with exponential backoff and jitter (a throttled
burst slows down instead of turning into a failure storm), everything else
raised with its context.

Writes are fenced: before each attempt of a write, ``fence()`` (the leader
elector's ``is_leader``, wired by ``ipamd.app``) must be True, else the write
raises ``NotLeaderError`` and is counted in ``tke_ipamd_fenced_cloud_writes_total``
— a process that lost its Lease, or could not renew it in time, never acts
on the cloud beside the new leader."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from cloud.errors import CloudError, is_throttle
from cloud.models import Eni, Instance, Subnet
from cloud.ports import CloudApi
from core.ids import EniId, InstanceId, SubnetId, VpcId
from core.limits import EniLimits
from ipamd import metrics

log = logging.getLogger(__name__)
R = TypeVar("R")


NOT_LEADER = "ipamd.NotLeader"


class NotLeaderError(CloudError):
    """A cloud write refused: this ipamd is not (or no longer surely) the leader."""

    def __init__(self, action: str) -> None:
        super().__init__(
            action,
            NOT_LEADER,
            "this ipamd is not the leader (its Lease is held by another process or was "
            "not renewed within the renew deadline): cloud write refused",
        )


class InstrumentedCloud:
    def __init__(
        self,
        inner: CloudApi,
        *,
        attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.calls = 0
        self._lock = threading.Lock()
        #: checked before every write attempt; None: no leader election (always allowed)
        self.fence: Callable[[], bool] | None = None

    def _check_fence(self, action: str) -> None:
        if self.fence is not None and not self.fence():
            metrics.FENCED_WRITES.labels(action).inc()
            log.error("%s refused: this ipamd is not the leader", action)
            raise NotLeaderError(action)

    def _do(self, action: str, fn: Callable[[], R], *, write: bool = False) -> R:
        delay = self.base_delay
        for attempt in range(1, self.attempts + 1):
            if write:
                self._check_fence(action)
            with self._lock:
                self.calls += 1
            try:
                result = fn()
            except CloudError as exc:
                kind = "throttled" if is_throttle(exc.code) else "error"
                metrics.CLOUD_CALLS.labels(action, kind).inc()
                if not exc.retryable or attempt == self.attempts:
                    raise
                wait = min(self.max_delay, delay) * (0.5 + random.random())  # noqa: S311
                log.info("%s: %s; retry %d in %.2fs", action, exc.code, attempt, wait)
                self.sleep(wait)
                delay *= 2
                continue
            metrics.CLOUD_CALLS.labels(action, "ok").inc()
            return result
        raise AssertionError("unreachable")

    def describe_instances(self, instance_ids: Sequence[InstanceId]) -> list[Instance]:
        return self._do("DescribeInstances", lambda: self.inner.describe_instances(instance_ids))

    def eni_limits(self, instance_id: InstanceId) -> EniLimits:
        return self._do("DescribeNetworkInterfaceLimit", lambda: self.inner.eni_limits(instance_id))

    def describe_subnets(
        self, subnet_ids: Sequence[SubnetId] = (), *, vpc_id: VpcId | None = None
    ) -> list[Subnet]:
        return self._do(
            "DescribeSubnets", lambda: self.inner.describe_subnets(subnet_ids, vpc_id=vpc_id)
        )

    def describe_enis(
        self,
        *,
        eni_ids: Sequence[EniId] = (),
        instance_id: InstanceId | None = None,
        subnet_id: SubnetId | None = None,
        vpc_id: VpcId | None = None,
        tags: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> list[Eni]:
        return self._do(
            "DescribeNetworkInterfaces",
            lambda: self.inner.describe_enis(
                eni_ids=eni_ids,
                instance_id=instance_id,
                subnet_id=subnet_id,
                vpc_id=vpc_id,
                tags=tags,
                address=address,
            ),
        )

    def create_eni(
        self,
        *,
        vpc_id: VpcId,
        subnet_id: SubnetId,
        name: str,
        description: str = "",
        security_group_ids: Sequence[str] = (),
        secondary_ip_count: int = 0,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
        instance_id: InstanceId | None = None,
    ) -> Eni:
        return self._do(
            "CreateNetworkInterface",
            lambda: self.inner.create_eni(
                vpc_id=vpc_id,
                subnet_id=subnet_id,
                name=name,
                description=description,
                security_group_ids=security_group_ids,
                secondary_ip_count=secondary_ip_count,
                tags=tags,
                client_token=client_token,
                instance_id=instance_id,
            ),
            write=True,
        )

    def attach_eni(
        self, eni_id: EniId, instance_id: InstanceId, *, client_token: str | None = None
    ) -> None:
        self._do(
            "AttachNetworkInterface",
            lambda: self.inner.attach_eni(eni_id, instance_id, client_token=client_token),
            write=True,
        )

    def detach_eni(
        self, eni_id: EniId, instance_id: InstanceId, *, client_token: str | None = None
    ) -> None:
        self._do(
            "DetachNetworkInterface",
            lambda: self.inner.detach_eni(eni_id, instance_id, client_token=client_token),
            write=True,
        )

    def delete_eni(self, eni_id: EniId) -> None:
        self._do("DeleteNetworkInterface", lambda: self.inner.delete_eni(eni_id), write=True)

    def assign_ips(
        self,
        eni_id: EniId,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]:
        return self._do(
            "AssignPrivateIpAddresses",
            lambda: self.inner.assign_ips(
                eni_id, count=count, addresses=addresses, client_token=client_token
            ),
            write=True,
        )

    def unassign_ips(self, eni_id: EniId, addresses: Sequence[str]) -> None:
        self._do(
            "UnassignPrivateIpAddresses",
            lambda: self.inner.unassign_ips(eni_id, addresses),
            write=True,
        )

    def migrate_ip(self, source_eni_id: EniId, destination_eni_id: EniId, address: str) -> None:
        self._do(
            "MigratePrivateIpAddress",
            lambda: self.inner.migrate_ip(source_eni_id, destination_eni_id, address),
            write=True,
        )
