"""What the node may advertise, from its inputs (pure).

capacity = (ENIs − 1) × (IPs per ENI − 1), capped by the operator's
``max_pods``. Healthy = the IPs in use plus what is usable now: the node
agent's IP tally through the one rule ``core.usable.healthy_devices``, with
capacity (lowered by ENIs that are unavailable: taken by something else,
failed to attach) as the limit; an operator's ``usable_ips`` caps it too.
Without a tally Healthy is the whole (lowered) capacity. Unknown limits
(identity or API not yet known) give no devices.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.limits import EniLimits, max_pods
from core.usable import IpTally, healthy_devices
from device_plugin.devices import DeviceSet


@dataclass(frozen=True, slots=True)
class CapacityInputs:
    limits: EniLimits | None = None
    max_pods: int | None = None  # operator cap; None = no cap
    unavailable_enis: int = 0  # secondary ENIs this node cannot use now
    usable_ips: int | None = None  # a cap on Healthy (operator); None = none
    tally: IpTally | None = None  # the node agent's IP tally; None = not reported

    def __post_init__(self) -> None:
        if self.max_pods is not None and self.max_pods < 0:
            raise ValueError(f"max_pods must be >= 0, got {self.max_pods}")
        if self.unavailable_enis < 0:
            raise ValueError(f"unavailable_enis must be >= 0, got {self.unavailable_enis}")
        if self.usable_ips is not None and self.usable_ips < 0:
            raise ValueError(f"usable_ips must be >= 0, got {self.usable_ips}")


def device_set(inputs: CapacityInputs) -> DeviceSet:
    if inputs.limits is None:
        return DeviceSet(0, 0)
    capacity = inputs.limits.max_pods
    if inputs.max_pods is not None:
        capacity = min(capacity, inputs.max_pods)
    healthy = capacity
    if inputs.unavailable_enis:
        usable_enis = max(0, inputs.limits.enis - inputs.unavailable_enis)
        healthy = min(healthy, max_pods(usable_enis, inputs.limits.ips_per_eni))
    if inputs.tally is not None:
        healthy = min(healthy, healthy_devices(inputs.tally, healthy))
    if inputs.usable_ips is not None:
        healthy = min(healthy, inputs.usable_ips)
    return DeviceSet(capacity, healthy)
