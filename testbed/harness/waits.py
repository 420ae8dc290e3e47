"""Bounded waits (a bound, never a timing assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def wait_for(
    what: str,
    fn: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.1,
    *,
    tolerate: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what`` and the last
    value. An exception of a ``tolerate`` type counts as "not yet" (e.g. the apiserver
    refusing while it starts); any other propagates at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except tolerate as exc:
            last = exc
        if last and not isinstance(last, BaseException):
            return last  # type: ignore[no-any-return]
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
