"""The standalone capacity feed: an optional file of ``key=value`` lines
(``max_pods`` (0 = no cap), ``unavailable_enis``, ``usable_ips``; ``#``
comments), re-read
whenever it changes. A key absent from the file falls back to its flag/env
value (``usable_ips``: not reported). A node agent in another process, or an
operator, can write it (atomically: write a temp file, then rename)."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from device_plugin.state import CapacityState

log = logging.getLogger(__name__)
KEYS = ("max_pods", "unavailable_enis", "usable_ips")


class CapacityFileError(ValueError):
    """The file has a line we cannot use; the message names file and line."""


@dataclass(frozen=True, slots=True)
class CapacityOverrides:
    max_pods: int | None = None
    unavailable_enis: int | None = None
    usable_ips: int | None = None


def parse_capacity_file(text: str, path: str = "<capacity file>") -> CapacityOverrides:
    values: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, eq, value = (p.strip() for p in line.partition("="))
        if not eq or key not in KEYS:
            raise CapacityFileError(
                f"{path}:{lineno}: expected one of {', '.join(KEYS)} = <integer>, got {raw!r}"
            )
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise CapacityFileError(
                f"{path}:{lineno}: {key} must be an integer >= 0, got {value!r}"
            )
        values[key] = number
    return CapacityOverrides(**values)


class CapacityFileWatcher:
    def __init__(
        self,
        path: str,
        state: CapacityState,
        *,
        default_max_pods: int | None,
        default_unavailable_enis: int,
        interval: float,
    ) -> None:
        self.path = path
        self.state = state
        self.default_max_pods = default_max_pods
        self.default_unavailable_enis = default_unavailable_enis
        self.interval = interval
        self._stop = threading.Event()
        self._seen: tuple[int, int, int] | None = None
        self._thread = threading.Thread(target=self._run, name="dp-capfile", daemon=True)

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            st = os.stat(self.path)
            key: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            key = None
        if key == self._seen:
            return
        self._seen = key
        if key is None:
            overrides = CapacityOverrides()
        else:
            try:
                with open(self.path, encoding="utf-8") as f:
                    overrides = parse_capacity_file(f.read(), self.path)
            except (OSError, CapacityFileError) as exc:
                log.error(
                    "capacity file ignored; keeping the previous values", extra={"error": str(exc)}
                )
                return
        self.apply(overrides)

    def apply(self, overrides: CapacityOverrides) -> None:
        log.info("capacity file applied", extra={"path": self.path, "values": str(overrides)})
        cap = self.default_max_pods if overrides.max_pods is None else (overrides.max_pods or None)
        unavailable = (
            self.default_unavailable_enis
            if overrides.unavailable_enis is None
            else overrides.unavailable_enis
        )
        self.state.update(
            max_pods=cap, unavailable_enis=unavailable, usable_ips=overrides.usable_ips
        )
