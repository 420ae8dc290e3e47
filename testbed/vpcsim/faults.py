"""Fault injection knobs, settable at start (``--faults`` JSON) and at run
time (``POST /_admin/faults``). Ratios are probabilities in [0, 1]."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Faults:
    throttle_ratio: float = 0.0  # answer RequestLimitExceeded / LimitExceeded.ActionLimited
    throttle_code: str = "RequestLimitExceeded"
    error_5xx_ratio: float = 0.0  # HTTP 503 (the SDK raises ServerNetworkError)
    internal_error_ratio: float = 0.0  # HTTP 200 with InternalError
    lost_reply_ratio: float = 0.0  # apply the call, then answer HTTP 503 (the reply is lost)
    latency_ms: float = 0.0  # added to every API call
    task_fail_ratio: float = 0.0  # async tasks end FAILED
    task_delay_ms: float = 20.0  # how long an async task stays RUNNING
    rate_limits: bool = True  # enforce the documented per-action limits
    actions: list[str] = field(default_factory=list)  # limit the ratios to these; [] = all

    def applies(self, action: str) -> bool:
        return not self.actions or action in self.actions

    def roll(self, ratio: float, action: str, rng: random.Random) -> bool:
        return ratio > 0 and self.applies(action) and rng.random() < ratio

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, data: dict[str, Any]) -> None:
        """Apply the given fields (unknown names or bad types raise ValueError)."""
        known = {f.name: f for f in fields(self)}
        for key, value in data.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {sorted(known)}")
            current = getattr(self, key)
            new_value: Any = value
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"fault {key!r} must be a boolean")
            elif isinstance(current, float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"fault {key!r} must be a number")
                number = float(value)
                new_value = number
                if key.endswith("_ratio") and not 0 <= number <= 1:
                    raise ValueError(f"fault {key!r} must be in [0, 1], got {value}")
                if number < 0:
                    raise ValueError(f"fault {key!r} must not be negative")
            elif isinstance(current, str):
                if not isinstance(value, str):
                    raise ValueError(f"fault {key!r} must be a string")
            elif isinstance(current, list) and (
                not isinstance(value, list) or not all(isinstance(v, str) for v in value)
            ):
                raise ValueError(f"fault {key!r} must be a list of action names")
            setattr(self, key, new_value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        f = cls()
        f.update(data)
        return f
