"""What the benches on the local run's real nodes share (``bench.lb``, ``bench.datapath``):
the run's start and teardown, the machine's load line, and how repeated rounds are
summed up (median and spread).

    with LocalRun("lb", "tlb") as run:
        ...  # run.env: the started Environment
    return run.exit_code

The run's work directory is under ``/var/lib/tke-e2e`` and is removed when the bench
finished and everything stopped cleanly; otherwise it is kept and named (the logs of the
nodes and the control plane are there). Teardown steps of the bench's own (a load
balancer's namespaces, fabric routes) report their problems with ``run.problems``."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localrun.environment import Environment

WORKDIR = Path("/var/lib/tke-e2e")


def load() -> str:
    """The machine's load average (1 and 5 min) and CPU count, for a bench's output."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min), {os.cpu_count()} CPUs"


def arguments(prog: str, doc: str | None, rounds: int) -> argparse.ArgumentParser:
    """The bench's argument parser, with ``--rounds`` (interleaved rounds, medians)."""
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=rounds,
                        help="rounds (each side measured back to back in every round, the "
                             "order alternating); the tables print medians and [min–max]")
    return parser


def not_root(prog: str) -> bool:
    """True (and a message) when not root: the local run needs network namespaces."""
    if os.geteuid() == 0:
        return False
    print(f"{prog}: run as root (network namespaces, the local run)", file=sys.stderr)
    return True


def spread(values: Sequence[float]) -> str:
    """``min–max`` of the rounds (one value: just it). Pure."""
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if lo == hi else f"{lo:.2f}–{hi:.2f}"


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def report(title: str, table: str) -> None:
    """A bench's closing table under its title, and the load at the end."""
    print(f"\n=== {title} ===")
    print(table)
    print(f"  {load()}", flush=True)


class LocalRun:
    """One local run (three real nodes, no kwok nodes) for the length of a ``with``."""

    def __init__(self, name: str, prefix: str) -> None:
        from localrun.environment import Environment

        self.workdir = WORKDIR / f"{name}-{secrets.token_hex(3)}"
        self.env: Environment = Environment(
            self.workdir, prefix=prefix, kwok_nodes=0,
            progress=lambda line: print(line, flush=True))
        self.problems: list[str] = []
        self.ok = False

    def __enter__(self) -> LocalRun:
        started = time.monotonic()
        try:
            self.env.start()
        except BaseException:
            self._stop()
            raise
        print(f"environment up ({time.monotonic() - started:.0f} s); {load()}", flush=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.ok = kind is None
        self._stop()

    def _stop(self) -> None:
        self.problems += self.env.stop()
        if self.problems:
            print(f"stop problems (kept {self.workdir}): {self.problems}", file=sys.stderr)
        elif self.ok:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok and not self.problems else 1
