"""Token buckets with a fake clock."""

from __future__ import annotations

import pytest

from cloud.ratelimit import API_RATE_LIMITS, ActionLimiter, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_burst_then_refill() -> None:
    clock = FakeClock()
    b = TokenBucket(rate=10, burst=5, clock=clock)
    assert [b.try_take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.1  # one token
    assert b.try_take()
    assert not b.try_take()
    clock.now += 10  # refill is capped at burst
    assert b.tokens == pytest.approx(5)


def test_reserve_returns_wait_and_goes_into_debt() -> None:
    clock = FakeClock()
    b = TokenBucket(rate=2, burst=1, clock=clock)
    assert b.reserve() == 0
    assert b.reserve() == pytest.approx(0.5)
    assert b.reserve() == pytest.approx(1.0)


def test_clock_going_backwards_adds_nothing() -> None:
    clock = FakeClock()
    b = TokenBucket(rate=1, burst=1, clock=clock)
    assert b.try_take()
    clock.now -= 50
    assert not b.try_take()


@pytest.mark.parametrize(("rate", "burst"), [(0, None), (-1, None), (1, 0.5)])
def test_invalid_buckets(rate: float, burst: float | None) -> None:
    with pytest.raises(ValueError, match="token bucket"):
        TokenBucket(rate, burst)


def test_action_limiter_per_action_and_default() -> None:
    clock = FakeClock()
    lim = ActionLimiter({"A": 2}, default_rate=1, clock=clock, sleep=clock.sleep)
    assert lim.acquire("A") == 0
    assert lim.acquire("A") == 0  # burst = rate = 2
    assert lim.acquire("A") == pytest.approx(0.5)
    assert clock.slept == [pytest.approx(0.5)]
    assert lim.acquire("B") == 0  # independent bucket
    assert lim.bucket("B").rate == 1
    assert not lim.try_acquire("B")


def test_documented_limits() -> None:
    assert API_RATE_LIMITS["DescribeNetworkInterfaceLimit"] == 20
    assert API_RATE_LIMITS["DescribeVpcTaskResult"] == 20
    assert API_RATE_LIMITS["AssignPrivateIpAddresses"] == 100
    assert API_RATE_LIMITS["DescribeInstances"] == 40
