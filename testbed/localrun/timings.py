"""Phase timings of the local run (printed by the demo, quoted in docs/local-run.md)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger("localrun")


@dataclass
class Phases:
    """Ordered (phase, seconds); ``progress`` is told when each phase starts and ends."""

    done: list[tuple[str, float]] = field(default_factory=list)
    progress: Callable[[str], None] = print

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.progress(f"==> {name} ...")
        t0 = time.monotonic()
        yield
        took = time.monotonic() - t0
        self.done.append((name, took))
        self.progress(f"    {name}: {took:.1f}s")

    def table(self) -> str:
        total = sum(t for _, t in self.done)
        rows = [f"  {name:<44} {t:6.1f}s" for name, t in self.done]
        return "\n".join([*rows, f"  {'total':<44} {total:6.1f}s"])
