"""ipamd.rules.pool: warm-pool targets, fewest-ENIs placement, batching, release choice."""

from __future__ import annotations

import pytest

from ipamd.rules import pool
from ipamd.rules.pool import EniView, FreeIp, PoolCounts, PoolTargets


@pytest.mark.parametrize(
    ("dynamic", "used", "mn", "mx", "cap", "want"),
    [
        (0, 0, 5, 5, 100, 5),  # empty node: fill to min
        (5, 0, 5, 5, 100, 0),
        (5, 3, 5, 5, 100, 3),  # 3 pods started: keep 5 free
        (10, 2, 5, 5, 100, -3),  # surplus
        (10, 2, 5, 10, 100, 0),  # within [used+min, used+max]
        (0, 0, 5, 5, 3, 3),  # capacity caps
        (4, 4, 5, 5, 4, 0),  # full node
        (6, 0, 0, 0, 100, -6),
    ],
)
def test_warm_delta(dynamic: int, used: int, mn: int, mx: int, cap: int, want: int) -> None:
    assert pool.warm_delta(PoolCounts(dynamic, used), PoolTargets(mn, mx), cap) == want


@pytest.mark.parametrize(
    ("dynamic", "used", "awaiting", "mn", "mx", "cap", "want"),
    [
        (0, 0, 1, 0, 0, 27, 1),  # warm target 0, a pod waits: one IP for it
        (1, 0, 1, 0, 0, 27, 0),  # its IP added, not taken yet: in range
        (1, 1, 0, 0, 0, 27, 0),  # taken: counted once (used, no longer waiting)
        (1, 0, 0, 0, 0, 27, -1),  # the pod went before its IP: ordinary surplus
        (5, 0, 8, 5, 5, 27, 8),  # burst of 8 on 5 warm: 8 + 5 in one refill
        (13, 8, 0, 5, 5, 27, 0),  # the 8 took theirs: 8 used + 5 warm
        (10, 5, 3, 5, 5, 27, 3),  # half-way: 5 took theirs, 3 still wait
        (5, 0, 25, 5, 5, 27, 22),  # capped by what the node can hold
        (27, 0, 25, 5, 5, 27, 0),
        (3, 0, 2, 0, 4, 27, 0),  # within [used + awaiting + min, used + awaiting + max]
        (8, 0, 2, 0, 4, 27, -2),
    ],
)
def test_warm_delta_with_pods_waiting(
    dynamic: int, used: int, awaiting: int, mn: int, mx: int, cap: int, want: int
) -> None:
    counts = PoolCounts(dynamic, used, awaiting=awaiting)
    assert pool.warm_delta(counts, PoolTargets(mn, mx), cap) == want


def v(eid: str, cap: int, sec: int, used: int, usable: bool = True, subnet: str = "s") -> EniView:
    return EniView(eid, subnet, cap, sec, used, usable)


@pytest.mark.parametrize(
    ("enis", "want", "plan"),
    [
        ([v("a", 10, 9, 9)], 3, []),  # full
        ([v("a", 10, 2, 2), v("b", 10, 5, 4)], 3, [("b", 3)]),  # most in use first
        ([v("a", 10, 2, 1), v("b", 10, 8, 8)], 4, [("b", 1), ("a", 3)]),
        ([v("a", 30, 0, 0)], 25, [("a", 10), ("a", 10), ("a", 5)]),  # ≤10 per call
        ([v("a", 10, 0, 0, usable=False), v("b", 10, 0, 0)], 2, [("b", 2)]),
    ],
)
def test_plan_adds(enis: list[EniView], want: int, plan: list[tuple[str, int]]) -> None:
    assert pool.plan_adds(enis, want) == plan


@pytest.mark.parametrize(
    ("enis", "want", "limit", "new"),
    [
        ([], 5, 3, True),
        ([v("a", 10, 9, 9)], 1, 3, True),
        ([v("a", 10, 9, 9), v("b", 10, 9, 9)], 1, 3, False),  # primary + 2 = limit
        ([v("a", 10, 4, 4)], 5, 3, False),  # room enough
        ([v("a", 10, 4, 4, usable=False)], 5, 3, True),  # not usable (draining subnet)
    ],
)
def test_needs_new_eni(enis: list[EniView], want: int, limit: int, new: bool) -> None:
    assert pool.needs_new_eni(enis, want, limit) is new


def test_choose_subnet_most_free() -> None:
    assert pool.choose_subnet([("s1", 10), ("s2", 30), ("s3", 30)]) == "s2"
    assert pool.choose_subnet([("s1", 0)]) is None
    assert pool.choose_subnet([]) is None


def test_first_batch() -> None:
    assert pool.first_batch(25, 30) == 10
    assert pool.first_batch(3, 30) == 3
    assert pool.first_batch(25, 6) == 5
    assert pool.first_batch(0, 6) == 0


def test_choose_release_fewest_in_use_and_unusable_first() -> None:
    enis = [v("a", 10, 5, 4), v("b", 10, 3, 1), v("c", 10, 2, 2, usable=False)]
    free = [
        FreeIp("10.0.0.5", "a"),
        FreeIp("10.0.0.6", "b"),
        FreeIp("10.0.0.7", "b"),
        FreeIp("10.0.0.9", "c"),
    ]
    assert pool.choose_release(free, enis) == FreeIp("10.0.0.9", "c")
    assert pool.choose_release(free[:3], enis) == FreeIp("10.0.0.7", "b")
    assert pool.choose_release([], enis) is None


def test_empty_enis() -> None:
    assert pool.empty_enis([v("a", 10, 0, 0), v("b", 10, 1, 0)]) == ["a"]


@pytest.mark.parametrize(
    ("now", "since", "last", "ok"),
    [
        (100.0, None, -1e18, False),  # not in surplus
        (100.0, 90.0, -1e18, False),  # surplus too recent
        (100.0, 70.0, -1e18, True),
        (100.0, 70.0, 85.0, False),  # released one 15 s ago
        (100.0, 70.0, 60.0, True),
    ],
)
def test_may_trim(now: float, since: float | None, last: float, ok: bool) -> None:
    assert pool.may_trim(now, since, last, 30.0) is ok
