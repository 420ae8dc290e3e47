"""Leader election over a Lease, client-go style: a candidate takes the lease
when its record has not changed for ``lease_duration`` (measured on the local
monotonic clock, so clock skew between replicas does not matter); the leader
renews every ``retry_period`` and gives up leadership when it could not renew
for ``renew_deadline``. Losing leadership stops the process (the Deployment
restarts it as a candidate): no two processes act on the cloud at once.

What makes that true:

* every Lease call is bounded by what is left of the renew deadline (and the
  Lease client never retries on its own), so a hanging apiserver cannot keep
  a leader believing it leads past the deadline;
* ``is_leader()`` — the fence the cloud-call layer checks before every write —
  is computed from the clock: True only while the last successful renew
  *started* less than ``renew_deadline`` ago. Another candidate can take the
  Lease only ``lease_duration`` (> renew_deadline) after it last saw it change,
  which is after that renew started; so the two never both pass the fence;
* the Lease is released only when the caller's stop event is set, which the
  app does after its workers stopped (``ipamd.app``);
* at the start of a shutdown the app puts the elector on ``hold()``: no renew
  (and no acquire) after that, so the fence shuts at most ``renew_deadline``
  and the Lease is free at most ``lease_duration`` after the stop began, even
  when a worker does not stop and the Lease is left to expire."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from ipamd.kube.api import KubeError
from ipamd.kube.lease import LeaseClient, LeaseRecord

log = logging.getLogger(__name__)

#: the shortest time a Lease call is given (a timeout of 0 would mean "none")
MIN_CALL_S = 0.05


class _LateError(Exception):
    """The renew deadline passed before a Lease call could be made."""


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
        #: False: at stop, leave the Lease to expire (work may still be in flight)
        self.release_on_stop = True
        self.released = False
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._hold = threading.Event()

    def _duration_s(self) -> int:
        return max(1, math.ceil(self.lease_duration))

    def is_leader(self) -> bool:
        """The fence: leading, and the last renew started within the renew deadline."""
        return self.leading.is_set() and time.monotonic() - self._last_renew < self.renew_deadline

    def hold(self) -> None:
        """Renew and acquire no more (shutdown has begun); ``run`` waits for its
        stop event, then releases as usual."""
        self._hold.set()

    def fence_left(self) -> float:
        """Seconds until the fence shuts if no renew succeeds meanwhile (0 when
        not leading)."""
        if not self.leading.is_set():
            return 0.0
        return max(0.0, self._last_renew + self.renew_deadline - time.monotonic())

    def _deadline(self, start: float) -> float:
        if self.leading.is_set():
            return self._last_renew + self.renew_deadline
        return start + self.renew_deadline

    @staticmethod
    def _left(deadline: float) -> float:
        """Seconds left for one Lease call; raises _LateError when the deadline has passed."""
        left = deadline - time.monotonic()
        if left < MIN_CALL_S:
            raise _LateError
        return left

    def try_acquire_or_renew(self, start: float | None = None) -> bool:
        """One attempt; every call bounded by the deadline. ``start``: when the
        attempt began (monotonic), the time a success is recorded at."""
        now = time.monotonic() if start is None else start
        try:
            rec = self._attempt(now, self._deadline(now))
        except _LateError:
            return False
        if rec is None:
            return False
        self._observe(rec, now)
        return True

    def _attempt(self, now: float, deadline: float) -> LeaseRecord | None:
        current = self.lease.get(timeout=self._left(deadline))
        if current is None:
            return self.lease.create(
                self.identity, self._duration_s(), timeout=self._left(deadline)
            )
        if self._observed is None or current.resource_version != self._observed.resource_version:
            self._observe(current, now)
        held_by_other = current.holder and current.holder != self.identity
        if held_by_other and now - self._observed_at < max(current.duration_s, 1):
            return None
        acquire = current.holder != self.identity
        return self.lease.update(
            current,
            self.identity,
            self._duration_s(),
            acquire=acquire,
            timeout=self._left(deadline),
        )

    def _observe(self, rec: LeaseRecord, now: float) -> None:
        self._observed = rec
        self._observed_at = now

    def _step_down(self) -> None:
        log.error(
            "leader election: could not renew the lease within %.1fs; stepping down",
            self.renew_deadline,
        )
        self.leading.clear()
        self.on_stopped()

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set (or leadership is lost); then release the Lease
        if leading and ``release_on_stop``."""
        while not stop.is_set():
            if self._hold.is_set():
                stop.wait(self.retry_period)
                continue
            start = time.monotonic()
            if self.leading.is_set() and start - self._last_renew >= self.renew_deadline:
                self._step_down()
                return
            try:
                ok = self.try_acquire_or_renew(start)
            except KubeError as exc:
                log.warning("leader election: %s", exc)
                ok = False
            if ok:
                # the record was written after ``start``: others count from later
                self._last_renew = start
                if not self.leading.is_set():
                    log.info("leader election: %s became the leader", self.identity)
                    self.leading.set()
                    self.on_started()
            elif (
                self.leading.is_set() and time.monotonic() - self._last_renew >= self.renew_deadline
            ):
                self._step_down()
                return
            stop.wait(self.retry_period)
        self._release()

    def _release(self) -> None:
        if not self.leading.is_set():
            return
        self.leading.clear()  # the fence closes before the Lease is given up
        if not self.release_on_stop:
            log.warning("leader election: stopping without releasing the lease (it expires)")
            return
        try:
            current = self.lease.get(timeout=self.renew_deadline)
            if current is not None and current.holder == self.identity:
                self.lease.release(current, self.identity, timeout=self.renew_deadline)
                self.released = True
                log.info("leader election: %s released the lease", self.identity)
        except KubeError as exc:
            log.warning("leader election: could not release the lease: %s", exc)
