"""Leader election over a Lease, client-go style: a candidate takes the lease
when its record has not changed for ``lease_duration`` (measured on the local
monotonic clock, so clock skew between replicas does not matter); the leader
renews every ``retry_period`` and gives up leadership when it could not renew
for ``renew_deadline``. Losing leadership stops the process (the Deployment
restarts it as a candidate): no two processes act on the cloud at once."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ipamd.kube.api import KubeError
from ipamd.kube.lease import LeaseClient, LeaseRecord

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        lease: LeaseClient,
        identity: str,
        *,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
    ) -> None:
        self.lease = lease
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started = on_started
        self.on_stopped = on_stopped
        self.leading = threading.Event()
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0

    def _duration_s(self) -> int:
        return max(1, math.ceil(self.lease_duration))

    def try_acquire_or_renew(self) -> bool:
        now = time.monotonic()
        current = self.lease.get()
        if current is None:
            rec = self.lease.create(self.identity, self._duration_s())
            if rec is None:
                return False
            self._observe(rec, now)
            return True
        if self._observed is None or current.resource_version != self._observed.resource_version:
            self._observe(current, now)
        held_by_other = current.holder and current.holder != self.identity
        if held_by_other and now - self._observed_at < max(current.duration_s, 1):
            return False
        acquire = current.holder != self.identity
        rec = self.lease.update(current, self.identity, self._duration_s(), acquire=acquire)
        if rec is None:
            return False
        self._observe(rec, now)
        return True

    def _observe(self, rec: LeaseRecord, now: float) -> None:
        self._observed = rec
        self._observed_at = now

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ok = self.try_acquire_or_renew()
            except KubeError as exc:
                log.warning("leader election: %s", exc)
                ok = False
            now = time.monotonic()
            if ok:
                self._last_renew = now
                if not self.leading.is_set():
                    log.info("leader election: %s became the leader", self.identity)
                    self.leading.set()
                    self.on_started()
            elif self.leading.is_set() and now - self._last_renew > self.renew_deadline:
                log.error("leader election: could not renew the lease; stepping down")
                self.leading.clear()
                self.on_stopped()
                return
            stop.wait(self.retry_period)
        if self.leading.is_set() and self._observed is not None:
            try:
                current = self.lease.get()
                if current is not None:
                    self.lease.release(current, self.identity)
            except KubeError:
                pass
