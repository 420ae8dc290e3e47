"""kit.watch without a server: the backoff between failures (doubling from the
first wait, capped, jittered between half and all of it) and the object key."""

from __future__ import annotations

from kit.watch import Timing, backoff_delay, object_key


def test_backoff_doubles_is_capped_and_jittered() -> None:
    t = Timing(first_backoff=0.5, max_backoff=30.0)
    top = [backoff_delay(n, t, rand=lambda: 1.0) for n in range(1, 10)]
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    low = [backoff_delay(n, t, rand=lambda: 0.0) for n in range(1, 4)]
    assert low == [0.25, 0.5, 1.0]
    assert backoff_delay(10_000, t, rand=lambda: 1.0) == 30.0  # no overflow


def test_object_key() -> None:
    assert object_key({"metadata": {"name": "n", "namespace": "ns"}}) == "ns/n"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
    assert object_key({}) == ""
