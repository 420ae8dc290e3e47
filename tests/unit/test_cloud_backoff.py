"""Backoff schedule and the retry loop (no real sleeping)."""

from __future__ import annotations

import random

import pytest

from cloud.backoff import backoff_delay, retry_call
from cloud.errors import CloudError, is_retryable, is_throttle


@pytest.mark.parametrize(
    ("attempt", "lo", "hi"),
    [(1, 0.05, 0.1), (2, 0.1, 0.2), (3, 0.2, 0.4), (4, 0.4, 0.8), (5, 0.5, 1.0), (30, 0.5, 1.0)],
)
def test_schedule_bounds(attempt: int, lo: float, hi: float) -> None:
    rng = random.Random(7)
    for _ in range(200):
        d = backoff_delay(attempt, base_s=0.1, cap_s=1.0, rng=rng)
        assert lo <= d <= hi


def test_schedule_has_jitter() -> None:
    rng = random.Random(1)
    assert len({backoff_delay(3, 0.1, 5, rng) for _ in range(20)}) > 10


def test_attempt_zero_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay(0, 0.1, 1, random.Random())


@pytest.mark.parametrize(
    ("code", "retry"),
    [
        ("RequestLimitExceeded", True),
        ("RequestLimitExceeded.UinLimitExceeded", True),
        ("LimitExceeded.ActionLimited", True),
        ("ClientNetworkError", True),
        ("ServerNetworkError", True),
        ("InternalError", True),
        ("UnsupportedOperation.MutexOperationTaskRunning", True),
        ("LimitExceeded.NetworkInterfaceLimitExceeded", False),
        ("LimitExceeded.EniPrivateIpLimit", False),
        ("ResourceInsufficient.Subnet", False),
        ("UnsupportedOperation.ZoneMismatch", False),
        ("ResourceNotFound", False),
        ("AuthFailure.SignatureFailure", False),
        ("InvalidParameterValue.Malformed", False),
    ],
)
def test_retryable_codes(code: str, retry: bool) -> None:
    assert is_retryable(code) is retry
    assert CloudError("A", code, "m").retryable is retry


def test_throttle_codes() -> None:
    assert is_throttle("LimitExceeded.ActionLimited")
    assert not is_throttle("LimitExceeded.EniPrivateIpLimit")


def _flaky(codes: list[str]) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn(attempt: int) -> str:
        calls.append(attempt)
        if codes:
            raise CloudError("X", codes.pop(0), "boom")
        return "ok"

    return calls, fn


def test_retry_until_success() -> None:
    slept: list[float] = []
    retried: list[tuple[str, int]] = []
    calls, fn = _flaky(["RequestLimitExceeded", "InternalError", "LimitExceeded.ActionLimited"])
    out = retry_call(fn, max_attempts=5, base_s=0.1, cap_s=1, sleep=slept.append,  # type: ignore[arg-type]
                     rng=random.Random(0), on_retry=lambda e, a, d: retried.append((e.code, a)))
    assert out == "ok"
    assert calls == [1, 2, 3, 4]
    assert len(slept) == 3
    assert slept[0] <= 0.1 < slept[2] <= 0.4
    assert retried == [("RequestLimitExceeded", 1), ("InternalError", 2),
                       ("LimitExceeded.ActionLimited", 3)]


def test_no_retry_for_permanent_errors() -> None:
    slept: list[float] = []
    calls, fn = _flaky(["ResourceInsufficient.Subnet"])
    with pytest.raises(CloudError, match=r"ResourceInsufficient\.Subnet"):
        retry_call(fn, max_attempts=5, base_s=0.1, cap_s=1, sleep=slept.append)  # type: ignore[arg-type]
    assert calls == [1]
    assert slept == []


def test_gives_up_after_max_attempts() -> None:
    slept: list[float] = []
    calls, fn = _flaky(["RequestLimitExceeded"] * 10)
    with pytest.raises(CloudError, match="RequestLimitExceeded"):
        retry_call(fn, max_attempts=3, base_s=0.1, cap_s=1, sleep=slept.append)  # type: ignore[arg-type]
    assert calls == [1, 2, 3]
    assert len(slept) == 2
