"""The standalone capacity feed: the optional capacity file (its format, and
its parser, are ``core.capacityfile``), re-read whenever it changes. A key
absent from the file falls back to its flag/env value (``usable_ips``, the
IP tally: not reported). The node agent in another process, or an operator,
writes it. Polled every ``--watch-interval`` (0.1 s): a stat per poll."""

from __future__ import annotations

import logging
import os
import threading

from core.capacityfile import CapacityFileError, CapacityOverrides, parse_capacity_file
from device_plugin.state import CapacityState

log = logging.getLogger(__name__)


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
            max_pods=cap,
            unavailable_enis=unavailable,
            usable_ips=overrides.usable_ips,
            tally=overrides.tally,
        )
