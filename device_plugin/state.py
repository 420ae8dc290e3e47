"""The live capacity: a thread-safe holder of the inputs and the device set
they give, that ListAndWatch streams wait on.

``CapacityFeed`` is the narrow input port a node agent embedding the plugin
pushes into (usable IPs now, unavailable ENIs, the operator cap). Every
change that alters the device set bumps ``version`` and wakes the waiters at
once, so the full new list reaches the kubelet within one stream wake-up.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from core.limits import EniLimits
from device_plugin.capacity import CapacityInputs, device_set
from device_plugin.devices import DeviceSet

log = logging.getLogger(__name__)


class CapacityFeed(Protocol):
    """What a node agent tells the plugin about this node, any time, any thread."""

    def set_usable_ips(self, usable: int | None) -> None:
        """IPs pods could get now (warm + in use); None = not reported (no limit)."""
        ...

    def set_unavailable_enis(self, count: int) -> None:
        """Secondary ENIs this node cannot use now."""
        ...

    def set_max_pods(self, cap: int | None) -> None:
        """The operator's cap on capacity; None = no cap."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    devices: DeviceSet
    inputs: CapacityInputs


class CapacityState:
    """Implements ``CapacityFeed``; also takes the ENI limits."""

    def __init__(self, inputs: CapacityInputs | None = None) -> None:
        self._cond = threading.Condition()
        self._inputs = inputs or CapacityInputs()
        self._devices = device_set(self._inputs)
        self._version = 1
        self._listeners: list[Callable[[Snapshot], None]] = []

    # --- reading ---
    def snapshot(self) -> Snapshot:
        with self._cond:
            return Snapshot(self._version, self._devices, self._inputs)

    def wait_changed(self, version: int, timeout: float) -> Snapshot:
        """Block until the version differs from ``version``, ``poke`` is called,
        or ``timeout`` passes; return the current snapshot either way."""
        with self._cond:
            if self._version == version:
                self._cond.wait(timeout)
            return Snapshot(self._version, self._devices, self._inputs)

    def poke(self) -> None:
        """Wake every waiter (stream shutdown) without changing anything."""
        with self._cond:
            self._cond.notify_all()

    def add_listener(self, listener: Callable[[Snapshot], None]) -> None:
        """Called (outside the lock) after every device-set change, and once now."""
        with self._cond:
            self._listeners.append(listener)
        listener(self.snapshot())

    # --- writing ---
    def set_limits(self, limits: EniLimits | None) -> None:
        self.update(limits=limits)

    def set_usable_ips(self, usable: int | None) -> None:
        self.update(usable_ips=usable)

    def set_unavailable_enis(self, count: int) -> None:
        self.update(unavailable_enis=count)

    def set_max_pods(self, cap: int | None) -> None:
        self.update(max_pods=cap)

    def update(self, **changes: object) -> None:
        """Change several inputs at once (one device-set change, one stream message)."""
        with self._cond:
            inputs = dataclasses.replace(self._inputs, **changes)  # type: ignore[arg-type]
            devices = device_set(inputs)
            self._inputs = inputs
            changed = devices != self._devices
            if changed:
                old, self._devices = self._devices, devices
                self._version += 1
                self._cond.notify_all()
            snap = Snapshot(self._version, self._devices, self._inputs)
            listeners = list(self._listeners)
        if changed:
            log.info(
                "capacity changed",
                extra={
                    "capacity": devices.capacity,
                    "healthy": devices.healthy,
                    "previous_capacity": old.capacity,
                    "previous_healthy": old.healthy,
                    "changes": {k: str(v) for k, v in changes.items()},
                },
            )
            for listener in listeners:
                listener(snap)
