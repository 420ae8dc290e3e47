"""Token buckets: the adapter's client-side limiter per action (and the
emulator's server-side one). Pure: time comes from an injectable clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored. Thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        if rate <= 0:
            raise ValueError(f"token bucket rate must be positive, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        if self.burst < 1:
            raise ValueError(f"token bucket burst must be >= 1, got {self.burst}")
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def try_take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available now."""
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, possibly going into debt; return seconds to wait
        before using them (0 when they were available)."""
        with self._lock:
            self._refill()
            self._tokens -= n
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    @property
    def tokens(self) -> float:
        with self._lock:
            self._refill()
            return self._tokens


class ActionLimiter:
    """One bucket per action; actions without a configured rate use ``default_rate``."""

    def __init__(
        self,
        rates: Mapping[str, float],
        default_rate: float,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rates = dict(rates)
        self._default = default_rate
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def bucket(self, action: str) -> TokenBucket:
        with self._lock:
            b = self._buckets.get(action)
            if b is None:
                rate = self._rates.get(action, self._default)
                b = TokenBucket(rate, max(1.0, rate), self._clock)
                self._buckets[action] = b
            return b

    def acquire(self, action: str) -> float:
        """Block until a call of ``action`` may go; return the seconds waited."""
        wait = self.bucket(action).reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def try_acquire(self, action: str) -> bool:
        return self.bucket(action).try_take()


# Documented per-second limits (Tencent Cloud API docs, CN regions).
API_RATE_LIMITS: Mapping[str, float] = {
    "CreateNetworkInterface": 50,
    "AttachNetworkInterface": 50,
    "DetachNetworkInterface": 50,
    "DeleteNetworkInterface": 100,
    "AssignPrivateIpAddresses": 100,
    "UnassignPrivateIpAddresses": 100,
    "MigratePrivateIpAddress": 50,
    "DescribeNetworkInterfaces": 100,
    "DescribeNetworkInterfaceLimit": 20,
    "DescribeSubnets": 100,
    "DescribeVpcTaskResult": 20,
    "DescribeInstances": 40,
}
