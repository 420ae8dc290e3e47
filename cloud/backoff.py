"""Retries with exponential backoff and jitter. The schedule is pure; the loop
takes the sleep function, so tests run it without waiting."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from cloud.errors import CloudError

T = TypeVar("T")


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1 = first retry): "equal jitter",
    uniform in [d/2, d] with d = min(cap, base × 2^(attempt−1))."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, got {attempt}")
    d = min(cap_s, base_s * 2.0 ** (attempt - 1))
    return d / 2 + rng.uniform(0, d / 2)


def retry_call(
    fn: Callable[[int], T],
    *,
    max_attempts: int,
    base_s: float,
    cap_s: float,
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
    on_retry: Callable[[CloudError, int, float], None] | None = None,
) -> T:
    """Call ``fn(attempt)`` until it returns, or raises a non-retryable CloudError,
    or ``max_attempts`` calls failed (then the last error is raised)."""
    r = rng or random.Random()  # noqa: S311 - jitter, not crypto
    attempt = 1
    while True:
        try:
            return fn(attempt)
        except CloudError as exc:
            if not exc.retryable or attempt >= max_attempts:
                raise
            delay = backoff_delay(attempt, base_s, cap_s, r)
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            sleep(delay)
            attempt += 1
