"""The cloud's per-action request limits, as the emulated API enforces them.

This is the cloud side of the contract: the documented calls-per-second limit of
each action (Tencent Cloud API v3, CN region documentation) and a refilling
allowance per action. A call over the allowance is refused at once, as the cloud
does: ``LimitExceeded.ActionLimited`` for VPC actions, ``RequestLimitExceeded``
for CVM ones. The client keeps its own table; a unit test checks they agree."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

# Calls per second per action, as documented for the actions the emulator serves.
DOCUMENTED_LIMITS: Mapping[str, float] = MappingProxyType(
    {
        # VPC: ENIs
        "CreateNetworkInterface": 50,
        "AttachNetworkInterface": 50,
        "DetachNetworkInterface": 50,
        "DeleteNetworkInterface": 100,
        "DescribeNetworkInterfaces": 100,
        "DescribeNetworkInterfaceLimit": 20,
        # VPC: private IPs
        "AssignPrivateIpAddresses": 100,
        "UnassignPrivateIpAddresses": 100,
        "MigratePrivateIpAddress": 50,
        # VPC: network and tasks
        "DescribeSubnets": 100,
        "DescribeVpcTaskResult": 20,
        # CVM
        "DescribeInstances": 40,
    }
)
# Actions with no documented figure here get this many calls per second.
UNDOCUMENTED_LIMIT = 20.0


class PerActionAllowance:
    """At most ``limit`` calls of an action in any second, refilled continuously.

    ``admit(action)`` answers now (the cloud never queues a call): True and one
    call used, or False. Thread-safe; the clock is injectable for tests."""

    def __init__(
        self,
        limits: Mapping[str, float] = DOCUMENTED_LIMITS,
        default: float = UNDOCUMENTED_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for action, limit in {**limits, "(default)": default}.items():
            if limit <= 0:
                raise ValueError(f"rate limit of {action} must be positive, got {limit}")
        self._limits = dict(limits)
        self._default = float(default)
        self._clock = clock
        self._left: dict[str, tuple[float, float]] = {}  # action -> (calls left, at)
        self._lock = threading.Lock()

    def limit(self, action: str) -> float:
        return float(self._limits.get(action, self._default))

    def admit(self, action: str) -> bool:
        limit = self.limit(action)
        now = self._clock()
        with self._lock:
            left, at = self._left.get(action, (limit, now))
            left = min(limit, left + max(0.0, now - at) * limit)
            if left < 1.0:
                self._left[action] = (left, now)
                return False
            self._left[action] = (left - 1.0, now)
            return True
