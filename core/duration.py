"""Go-style durations, as Kubernetes users write them (``10m0s``, ``1h30m``,
``300s``, ``1.5h``, ``0s``, ``0``). Follows Go's ``time.ParseDuration``
grammar: a sequence of decimal numbers, each with an optional fraction and a
unit (ns, us, µs, μs, ms, s, m, h). Negative durations are refused here (no
flag of ours means anything by them)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5
    "μs": 1_000,  # U+03BC
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that is not a Go duration."""


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """Parse a Go duration; DurationError names the value and the expected form."""
    raw = text
    s = text.strip()
    hint = "expected a Go duration such as 10m0s, 1h30m, 300s or 0s"
    if not s:
        raise DurationError(f"invalid {what} {raw!r}: empty; {hint}")
    if s.startswith("-"):
        raise DurationError(f"invalid {what} {raw!r}: must not be negative")
    s = s.removeprefix("+")
    if s == "0":
        return timedelta(0)
    pos = 0
    total_ns = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise DurationError(f"invalid {what} {raw!r}: {hint}")
        total_ns += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if total_ns > 2**63 - 1:
        raise DurationError(f"invalid {what} {raw!r}: overflows a Go duration")
    return timedelta(microseconds=total_ns / 1000)


def format_duration(value: timedelta) -> str:
    """Go's ``Duration.String()`` for whole seconds and above: ``10m0s``, ``1h30m0s``."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rem = divmod(total, 3600)
    minutes, seconds = divmod(rem, 60)
    sec_text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{sign}{int(hours)}h{int(minutes)}m{sec_text}s"
    if minutes:
        return f"{sign}{int(minutes)}m{sec_text}s"
    return f"{sign}{sec_text}s"
