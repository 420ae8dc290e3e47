"""Feeds the device plugin (a separate process: the components never import
each other) through its capacity file (``tke-eni-device-plugin
--capacity-file``): recomputes ``capacity.usable_ips`` whenever the agent's
view of its node or ipamd's subnet status changes, and rewrites the file
atomically (temp file in the same directory + rename) only when its text
changes. The device plugin re-reads it on change."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from core.models import SubnetStatus

from .capacity import CapacityVerdict, render, usable_ips
from .ipsource import NodeIpSource
from .metrics import Metrics

log = logging.getLogger(__name__)

SubnetStatuses = Callable[[], Sequence[SubnetStatus] | None]


def write_atomic_if_changed(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; a reader
    sees the old or the new file, never a torn one. Returns whether it wrote."""
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return False
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("capacity file unreadable, rewriting", extra={"path": path, "error": str(exc)})
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".capacity-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True


class CapacityFilePublisher:
    """Keeps ``path`` equal to ``render(usable_ips(view, subnets()))``.

    ``update()`` is called by the view follower thread (on every change of the
    node's ENIs/IPs, and every ``resync`` seconds, which also restores a
    deleted file) and by whoever watches the subnet status (its ``on_change``).
    A failed write is logged and retried on the next call."""

    def __init__(
        self,
        path: str,
        source: NodeIpSource,
        subnets: SubnetStatuses = lambda: None,
        *,
        resync: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.path = path
        self.metrics = metrics or Metrics()
        self.source = source
        self.subnets = subnets
        self.resync = resync
        self.last: CapacityVerdict | None = None
        self.writes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def update(self) -> CapacityVerdict:
        with self._lock:
            verdict = usable_ips(self.source.view(), self.subnets())
            try:
                wrote = write_atomic_if_changed(self.path, render(verdict))
            except OSError as exc:
                self.metrics.capacity_writes.labels("error").inc()
                log.error(
                    "cannot write the device plugin capacity file",
                    extra={"path": self.path, "error": str(exc)},
                )
                return verdict
            usable = verdict.usable_ips
            self.metrics.usable_ips.set(-1 if usable is None else usable)
            if wrote:
                self.writes += 1
                self.metrics.capacity_writes.labels("ok").inc()
            if wrote or verdict != self.last:
                log.info(
                    "device plugin capacity",
                    extra={
                        "path": self.path,
                        "usable_ips": verdict.usable_ips,
                        "reason": verdict.reason,
                        "zones": list(verdict.zones),
                        "held": verdict.held,
                        "written": wrote,
                    },
                )
            self.last = verdict
            return verdict

    def _follow(self) -> None:
        generation = self.source.view().generation
        last = time.monotonic()
        while not self._stop.is_set():
            view = self.source.wait_for_change(generation, 1.0)  # 1 s: notice stop()
            if self._stop.is_set():
                return
            if view.generation != generation or time.monotonic() - last >= self.resync:
                generation = view.generation
                last = time.monotonic()
                self.update()

    def start(self) -> None:
        self.update()
        self._thread = threading.Thread(target=self._follow, name="capacity-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (the file stays: the device plugin keeps its values)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5.0)
