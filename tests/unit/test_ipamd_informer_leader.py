"""ipamd.kube.informer (cache feeding, resourceVersion order, tombstones) and
ipamd.leader (acquire, renew, take over an expired lease, step down) with an
in-memory Lease store standing in for ipamd's own LeaseClient wrapper (the
real lifecycle against kube-apiserver: tests/integration/test_ipamd_leader_lifecycle.py)."""

from __future__ import annotations

import threading
from typing import Any

from ipamd.kube.informer import Informer
from ipamd.kube.lease import LeaseRecord
from ipamd.leader import LeaderElector


def obj(name: str, rv: int, value: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "spec": {"v": value}}


def test_informer_orders_by_resource_version_and_keeps_tombstones() -> None:
    changes: list[tuple[str, str | None, str | None]] = []
    none: Any = None
    inf: Informer[str] = Informer(
        none, "/x", "t", lambda o: o["spec"]["v"], lambda k, a, b: changes.append((k, a, b))
    )
    inf.apply(obj("a", 5, "one"))
    inf.apply(obj("a", 4, "stale"))  # older event: ignored
    assert inf.get("a") == "one"
    inf.apply(obj("a", 7, "two"))
    inf.apply(None, deleted_key="a")  # our own delete
    inf.apply(obj("a", 7, "two"))  # a late watch event of the same version: no resurrection
    assert inf.get("a") is None
    inf.apply(obj("a", 9, "three"))  # re-created later
    assert inf.get("a") == "three"
    assert changes == [
        ("a", None, "one"),
        ("a", "one", "two"),
        ("a", "two", None),
        ("a", None, "three"),
    ]


def test_informer_summary_none_means_not_of_interest() -> None:
    none: Any = None
    inf: Informer[str] = Informer(none, "/x", "t", lambda o: o["spec"]["v"] or None)
    inf.apply(obj("a", 1, "x"))
    inf.apply(obj("a", 2, ""))
    assert inf.get("a") is None and len(inf) == 0


class MemLease:
    """In-memory stand-in for ipamd.kube.lease.LeaseClient (compare-and-swap on rv)."""

    def __init__(self) -> None:
        self.rec: LeaseRecord | None = None
        self.rv = 0
        self.fail = False

    def _new(self, holder: str, d: int, transitions: int) -> LeaseRecord:
        self.rv += 1
        self.rec = LeaseRecord(holder, d, "now", transitions, str(self.rv))
        return self.rec

    def get(self, *, timeout: float | None = None) -> LeaseRecord | None:
        if self.fail:
            from ipamd.kube.api import KubeError

            raise KubeError("GET", "/lease", 0, "connection refused")
        return self.rec

    def create(
        self, holder: str, duration_s: int, *, timeout: float | None = None
    ) -> LeaseRecord | None:
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
        if self.rec is None or self.rec.resource_version != current.resource_version:
            return None
        return self._new(holder, duration_s, current.transitions + (1 if acquire else 0))

    def release(self, current: LeaseRecord, holder: str, *, timeout: float | None = None) -> None:
        if current.holder == holder:
            self.update(current, "", 1, acquire=False)


def elector(lease: MemLease, ident: str, events: list[str]) -> LeaderElector:
    fake: Any = lease
    return LeaderElector(
        fake,
        ident,
        lease_duration=0.3,
        renew_deadline=0.2,
        retry_period=0.05,
        on_started=lambda: events.append(f"{ident} start"),
        on_stopped=lambda: events.append(f"{ident} stop"),
    )


def test_acquire_renew_and_takeover_after_expiry() -> None:
    lease = MemLease()
    events: list[str] = []
    a, b = elector(lease, "a", events), elector(lease, "b", events)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # held and fresh
    assert a.try_acquire_or_renew()  # renew
    assert lease.rec is not None and lease.rec.holder == "a"
    # a stops renewing: b takes over once the record has not changed for a lease duration
    stop = threading.Event()
    t = threading.Thread(target=b.run, args=(stop,))
    t.start()
    try:
        assert b.leading.wait(5)
    finally:
        stop.set()
        t.join(5)
    assert lease.rec.transitions == 1
    assert lease.rec.holder == "" and b.released  # given up at stop
    assert events == ["b start"]


def test_leader_steps_down_when_it_cannot_renew() -> None:
    lease = MemLease()
    events: list[str] = []
    a = elector(lease, "a", events)
    stop = threading.Event()
    t = threading.Thread(target=a.run, args=(stop,))
    t.start()
    assert a.leading.wait(5)
    lease.fail = True
    t.join(5)
    assert not t.is_alive()
    assert events == ["a start", "a stop"] and not a.leading.is_set()
