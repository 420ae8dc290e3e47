"""Device ids and the device set advertised to the kubelet (pure).

Every advertised device is one pod's ENI IP. Ids are deterministic,
``eni-ip-000`` … ``eni-ip-NNN`` (at least three digits), so they are stable
across plugin restarts and the kubelet's checkpoint keeps matching them.
The first ``healthy`` ids are Healthy, the rest of capacity Unhealthy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEVICE_ID_PREFIX = "eni-ip-"
HEALTHY = "Healthy"
UNHEALTHY = "Unhealthy"
_DIGITS_RE = re.compile(r"[0-9]{3,}")


def numbered_id(prefix: str, index: int) -> str:
    """``prefix`` and the index in at least three digits (``eni-ip-007``, ``eip-012``)."""
    return f"{prefix}{index:03d}"


def numbered_index(prefix: str, dev_id: str) -> int | None:
    """The index of a well-formed ``numbered_id(prefix, …)``, else None (``eni-ip-0007``,
    ``eni-ip-7`` and other prefixes are not well-formed)."""
    if not dev_id.startswith(prefix) or not _DIGITS_RE.fullmatch(dev_id[len(prefix) :]):
        return None
    index = int(dev_id[len(prefix) :])
    return index if numbered_id(prefix, index) == dev_id else None


def device_id(index: int) -> str:
    if index < 0:
        raise ValueError(f"device index must be >= 0, got {index}")
    return numbered_id(DEVICE_ID_PREFIX, index)


def device_index(dev_id: str) -> int | None:
    """The index of a well-formed device id (``eni-ip-007`` → 7), else None."""
    return numbered_index(DEVICE_ID_PREFIX, dev_id)


@dataclass(frozen=True, slots=True)
class DeviceSet:
    """``capacity`` devices, the first ``healthy`` of them Healthy."""

    capacity: int
    healthy: int

    def __post_init__(self) -> None:
        if self.capacity < 0 or not 0 <= self.healthy <= self.capacity:
            raise ValueError(f"invalid device set: {self.healthy} healthy of {self.capacity}")

    @property
    def unhealthy(self) -> int:
        return self.capacity - self.healthy

    def devices(self) -> list[tuple[str, str]]:
        """``(id, health)`` for every device, in index order."""
        return [
            (device_id(i), HEALTHY if i < self.healthy else UNHEALTHY) for i in range(self.capacity)
        ]

    def contains(self, dev_id: str) -> bool:
        index = device_index(dev_id)
        return index is not None and index < self.capacity

    def describe(self) -> str:
        if self.capacity == 0:
            return "no devices"
        return f"{device_id(0)}..{device_id(self.capacity - 1)} ({self.healthy} healthy)"


EMPTY = DeviceSet(0, 0)
