"""Fault injection knobs, settable at start (``--faults`` JSON) and at run
time (``POST /_admin/faults``). Ratios are probabilities in [0, 1]; a named
latency profile (``profile``, see ``vpcsim.latency``) fills the per-action
``call_ms``/``task_ms`` tables."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vpcsim import latency


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
    profile: str = ""  # a named latency profile (vpcsim.latency.PROFILES); "" = none
    call_ms: dict[str, float] = field(default_factory=dict)  # per-action answer time; "*"
    task_ms: dict[str, float] = field(default_factory=dict)  # per-action task time; "*"
    jitter_ratio: float = 0.0  # call_ms/task_ms figures spread uniformly by +-this

    def applies(self, action: str) -> bool:
        return not self.actions or action in self.actions

    def roll(self, ratio: float, action: str, rng: random.Random) -> bool:
        return ratio > 0 and self.applies(action) and rng.random() < ratio

    def call_delay_s(self, action: str, rng: random.Random) -> float:
        """How long the call waits before it is handled: ``latency_ms`` (where the
        ratios apply) plus the action's ``call_ms`` figure."""
        ms = self.latency_ms if self.applies(action) else 0.0
        ms += latency.jittered(latency.figure(self.call_ms, action), self.jitter_ratio, rng)
        return ms / 1000.0

    def task_delay_s(self, action: str, rng: random.Random) -> float:
        """How long the action's async task stays RUNNING: its ``task_ms`` figure,
        else ``task_delay_ms``."""
        ms = latency.figure(self.task_ms, action, self.task_delay_ms)
        return latency.jittered(ms, self.jitter_ratio, rng) / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, data: dict[str, Any]) -> None:
        """Apply the given fields (unknown names or bad types raise ValueError)."""
        known = {f.name: f for f in fields(self)}
        unknown = sorted(k for k in data if k not in known)
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {sorted(known)}")
        staged = Faults(**{f.name: getattr(self, f.name) for f in fields(self)})
        if "profile" in data:  # first: the other fields given with it override its figures
            staged._apply_profile(data["profile"])
        for key, value in data.items():
            if key != "profile":
                staged._set(key, value)
        for f in fields(self):  # all checked: nothing changes on a bad input
            setattr(self, f.name, getattr(staged, f.name))

    def _apply_profile(self, name: object) -> None:
        if not isinstance(name, str):
            raise ValueError("fault 'profile' must be a string")
        chosen = latency.get(name)
        self.profile = "" if chosen is latency.NONE else chosen.name
        self.call_ms = dict(chosen.call_ms)
        self.task_ms = dict(chosen.task_ms)
        self.jitter_ratio = chosen.jitter_ratio

    def _set(self, key: str, value: Any) -> None:
        current = getattr(self, key)
        new_value: Any = value
        if isinstance(current, dict):
            new_value = latency.check_table(key, value)
        elif isinstance(current, bool):
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
