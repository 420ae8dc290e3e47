"""ipamd.leader on a hand-driven clock: every Lease call is bounded by what is
left of the renew deadline, the fence closes exactly at the deadline, a
candidate takes the Lease exactly one lease duration after it last saw it
change, a leader rides out a failed renew inside the deadline and steps down
at it, and the Lease is given back only by its holder. These pin the
conditions the mutation run (docs/mutation.md) found unguarded by the
real-time tests in test_ipamd_informer_leader.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import ipamd.leader as leader_mod
from ipamd.kube.api import KubeError
from ipamd.kube.lease import LeaseRecord
from ipamd.leader import MIN_CALL_S, LeaderElector


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(leader_mod, "time", c)
    return c


@dataclass
class RecordingLease:
    """A compare-and-swap Lease that records each call and the timeout it got;
    ``fail`` makes every call raise, ``cost`` advances the clock per call."""

    clock: Clock
    rec: LeaseRecord | None = None
    rv: int = 0
    fail: bool = False
    cost: float = 0.0
    calls: list[tuple[str, float | None]] = field(default_factory=list)

    def _call(self, verb: str, timeout: float | None) -> None:
        self.calls.append((verb, timeout))
        self.clock.now += self.cost
        if self.fail:
            raise KubeError(verb, "/lease", 0, "connection refused")

    def _new(self, holder: str, d: int, transitions: int) -> LeaseRecord:
        self.rv += 1
        self.rec = LeaseRecord(holder, d, "now", transitions, str(self.rv))
        return self.rec

    def get(self, *, timeout: float | None = None) -> LeaseRecord | None:
        self._call("get", timeout)
        return self.rec

    def create(
        self, holder: str, duration_s: int, *, timeout: float | None = None
    ) -> LeaseRecord | None:
        self._call("create", timeout)
        return None if self.rec else self._new(holder, duration_s, 0)

    def update(
        self,
        current: LeaseRecord,
        holder: str,
        duration_s: int,
        *,
        acquire: bool,
        timeout: float | None = None,
    ) -> LeaseRecord | None:
        self._call("update", timeout)
        if self.rec is None or self.rec.resource_version != current.resource_version:
            return None
        return self._new(holder, duration_s, current.transitions + (1 if acquire else 0))

    def release(self, current: LeaseRecord, holder: str, *, timeout: float | None = None) -> None:
        self._call("release", timeout)
        self._new("", 1, current.transitions)


def elector(
    lease: RecordingLease,
    ident: str,
    events: list[str] | None = None,
    *,
    duration: float = 15.0,
    deadline: float = 10.0,
    retry: float = 2.0,
) -> LeaderElector:
    ev = events if events is not None else []
    fake: Any = lease
    return LeaderElector(
        fake,
        ident,
        lease_duration=duration,
        renew_deadline=deadline,
        retry_period=retry,
        on_started=lambda: ev.append(f"{ident} start"),
        on_stopped=lambda: ev.append(f"{ident} stop"),
    )


class Ticks:
    """``stop`` for ``LeaderElector.run``: each wait advances the clock by the
    retry period; set after ``rounds`` waits (or by a hook)."""

    def __init__(self, clock: Clock, rounds: int, hook: Any = None) -> None:
        self.clock, self.rounds, self.hook, self.waits = clock, rounds, hook, 0

    def is_set(self) -> bool:
        return self.waits >= self.rounds

    def wait(self, seconds: float) -> bool:
        self.clock.now += seconds
        self.waits += 1
        if self.hook is not None:
            self.hook(self.waits)
        return self.is_set()


def test_a_new_elector_has_released_nothing_and_does_not_lead(clock: Clock) -> None:
    e = elector(RecordingLease(clock), "a")
    assert e.released is False
    assert not e.is_leader()
    e._release()  # never led: nothing to give back
    assert e.released is False


def test_every_lease_call_is_bounded_by_what_is_left_of_the_deadline(clock: Clock) -> None:
    lease = RecordingLease(clock, cost=1.0)
    a = elector(lease, "a", deadline=10.0)
    clock.now = 100.0
    assert a.try_acquire_or_renew()  # get at 100 (10 left), create at 101 (9 left)
    assert lease.calls == [("get", 10.0), ("create", 9.0)]
    assert lease.rec is not None and lease.rec.duration_s == 15
    a.leading.set()
    a._last_renew = 100.0
    lease.calls.clear()
    clock.now = 105.0  # leading: the deadline counts from the last renew (110)
    assert a.try_acquire_or_renew()
    assert lease.calls == [("get", 5.0), ("update", 4.0)]


def test_an_attempt_started_past_its_deadline_makes_no_call(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a", deadline=10.0)
    clock.now = 20.0
    assert not a.try_acquire_or_renew(start=5.0)  # began at 5: its deadline was 15
    a.leading.set()
    a._last_renew = 0.0
    assert not a.try_acquire_or_renew()  # leading, renew deadline 10 long gone
    assert lease.calls == []


def test_a_call_with_exactly_the_minimum_left_is_still_made(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a", deadline=MIN_CALL_S)
    assert a.try_acquire_or_renew(start=0.0)
    assert lease.calls == [("get", MIN_CALL_S), ("create", MIN_CALL_S)]


def test_lease_duration_is_written_as_whole_seconds(clock: Clock) -> None:
    lease = RecordingLease(clock)
    assert elector(lease, "a", duration=1.0).try_acquire_or_renew()
    assert lease.rec is not None and lease.rec.duration_s == 1


def test_takeover_exactly_one_lease_duration_after_the_last_change(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a", duration=1.0, deadline=0.5)
    b = elector(lease, "b", duration=1.0, deadline=0.5)
    clock.now = 10.0
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees the record at 10.0
    clock.now = 10.5
    assert not b.try_acquire_or_renew()  # unchanged for 0.5 s: still a's
    clock.now = 11.0
    assert b.try_acquire_or_renew()  # unchanged for one lease duration: b's
    assert lease.rec is not None and lease.rec.holder == "b"
    assert lease.rec.transitions == 1  # a take-over counts a transition


def test_a_changed_record_restarts_the_candidates_count(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a", duration=1.0, deadline=0.5)
    b = elector(lease, "b", duration=1.0, deadline=0.5)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees it at 0
    clock.now = 0.75
    assert a.try_acquire_or_renew()  # a renews: a new record
    clock.now = 1.25
    assert not b.try_acquire_or_renew()  # changed at 0.75 as far as b knows: fresh
    clock.now = 1.5
    assert not b.try_acquire_or_renew()  # b saw the change at 1.25: 0.25 s ago
    clock.now = 2.25
    assert b.try_acquire_or_renew()
    assert lease.rec is not None and lease.rec.holder == "b" and lease.rec.transitions == 1


def test_renewing_does_not_count_a_transition(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a")
    for t in (0.0, 2.0, 4.0):
        clock.now = t
        assert a.try_acquire_or_renew()
    assert lease.rec is not None and lease.rec.holder == "a" and lease.rec.transitions == 0


def test_fence_closes_exactly_at_the_renew_deadline(clock: Clock) -> None:
    a = elector(RecordingLease(clock), "a", deadline=10.0)
    a.leading.set()
    a._last_renew = 100.0
    clock.now = 109.5
    assert a.is_leader()
    clock.now = 110.0
    assert not a.is_leader()
    a.leading.clear()
    clock.now = 100.0
    assert not a.is_leader()  # within the deadline but not leading


def test_a_leader_keeps_leading_while_it_renews_then_releases_at_stop(clock: Clock) -> None:
    lease = RecordingLease(clock)
    events: list[str] = []
    a = elector(lease, "a", events, deadline=10.0, retry=2.0)
    clock.now = 100.0
    a.run(Ticks(clock, rounds=8))  # type: ignore[arg-type]
    assert events == ["a start"]  # never stepped down in 16 s of renewing
    assert a.released and lease.rec is not None and lease.rec.holder == ""
    # the release is bounded by the renew deadline, like every other call
    assert lease.calls[-2:] == [("get", 10.0), ("release", 10.0)]
    assert not a.leading.is_set()


def test_one_failed_renew_inside_the_deadline_is_ridden_out(clock: Clock) -> None:
    lease = RecordingLease(clock)
    events: list[str] = []
    a = elector(lease, "a", events, deadline=10.0, retry=2.0)

    def flaky(waits: int) -> None:
        lease.fail = waits == 2  # the renew at 104 fails, the one at 106 works

    clock.now = 100.0
    a.run(Ticks(clock, rounds=6, hook=flaky))  # type: ignore[arg-type]
    assert events == ["a start"]
    assert a.released


def test_the_leader_steps_down_at_the_deadline_without_another_call(clock: Clock) -> None:
    lease = RecordingLease(clock)
    events: list[str] = []
    a = elector(lease, "a", events, deadline=10.0, retry=2.0)

    def outage(waits: int) -> None:
        lease.fail = waits >= 1  # every renew after the first acquire fails

    a.run(Ticks(clock, rounds=100, hook=outage))  # type: ignore[arg-type]
    assert events == ["a start", "a stop"]
    assert not a.leading.is_set() and not a.released
    # acquired at 0; renews tried at 2, 4, 6, 8 (each get fails); at 10 the
    # deadline has passed: it steps down without a fifth try
    assert [v for v, _ in lease.calls] == ["get", "create", "get", "get", "get", "get"]


def test_a_failed_renew_at_the_deadline_steps_down_at_once(clock: Clock) -> None:
    lease = RecordingLease(clock, cost=0.0)
    events: list[str] = []
    a = elector(lease, "a", events, deadline=10.0, retry=2.0)

    def slow(waits: int) -> None:
        lease.fail = waits >= 1  # the renews at 102, 104, 106 fail at once
        if waits == 4:  # the one at 108 fails after hanging until the deadline
            lease.cost = 2.0

    clock.now = 100.0
    a.run(Ticks(clock, rounds=100, hook=slow))  # type: ignore[arg-type]
    assert events == ["a start", "a stop"]
    assert clock.now == 110.0  # stepped down when the failed call returned, no wait


def test_release_only_when_we_hold_the_lease(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a")
    assert a.try_acquire_or_renew()
    a.leading.set()
    lease._new("b", 15, 1)  # b took it meanwhile
    lease.calls.clear()
    a._release()
    assert lease.rec is not None and lease.rec.holder == "b"
    assert [v for v, _ in lease.calls] == ["get"] and not a.released
    a.leading.set()
    lease.rec = None  # the Lease object was deleted
    a._release()  # nothing to release, no error
    assert not a.released


def test_release_errors_are_logged_not_raised(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a")
    assert a.try_acquire_or_renew()
    a.leading.set()
    lease.fail = True
    a._release()
    assert not a.released and not a.leading.is_set()  # the fence closed all the same


def test_release_on_stop_false_leaves_the_lease_to_expire(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a")
    assert a.try_acquire_or_renew()
    a.leading.set()
    a.release_on_stop = False
    lease.calls.clear()
    a._release()
    assert lease.calls == [] and not a.released and not a.leading.is_set()
    assert lease.rec is not None and lease.rec.holder == "a"


def test_a_leader_on_hold_stops_renewing_so_its_lease_expires_within_one_duration(
        clock: Clock) -> None:
    """Shutdown holds the elector first: no renew after that (the workers may
    still be stopping), so whatever they do the Lease is free at most one lease
    duration after the stop began, and the fence is shut a renew deadline after
    the last renew; the release still happens at stop."""
    lease = RecordingLease(clock)
    events: list[str] = []
    a = elector(lease, "a", events)
    held_at: list[float] = []

    def hook(waits: int) -> None:
        if waits == 3:
            a.hold()
            held_at.append(clock.now)

    a.run(Ticks(clock, rounds=12, hook=hook))  # type: ignore[arg-type]
    updates = [v for v, _ in lease.calls if v in ("create", "update")]
    assert len(updates) == 3, lease.calls  # create + 2 renews, none after the hold
    assert a.released and lease.rec is not None and lease.rec.holder == ""
    assert events == ["a start"]  # no step-down while on hold


def test_fence_left_counts_down_from_the_last_renew(clock: Clock) -> None:
    a = elector(RecordingLease(clock), "a", deadline=10.0)
    assert a.fence_left() == 0.0  # not leading
    assert a.try_acquire_or_renew()
    a.leading.set()
    a._last_renew = clock.now
    clock.now += 4.0
    assert a.fence_left() == pytest.approx(6.0)
    clock.now += 7.0
    assert a.fence_left() == 0.0


def test_a_candidate_on_hold_never_acquires(clock: Clock) -> None:
    lease = RecordingLease(clock)
    a = elector(lease, "a")
    a.hold()
    a.run(Ticks(clock, rounds=5))  # type: ignore[arg-type]
    assert lease.calls == [] and not a.leading.is_set()
