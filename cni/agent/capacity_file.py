"""Feeds the device plugin (a separate process: the components never import
each other) through its capacity file (``tke-eni-device-plugin
--capacity-file``): the single writer of what this node can use now.
Recomputes ``capacity.tally`` whenever the agent's view of its node, its
pool (an ADD or DEL: ``poke``) or ipamd's subnet status changes, and at the
moment a cooldown (or its floor) ends; rewrites the file atomically (temp
file in the same directory + rename) only when its text changes. The device
plugin re-reads it on change and sends the kubelet a new list at once.

Order against the API (issue 15): the scheduler extender reads the VpcIP
phases the agent reports (``reporter``), the kubelet the device plugin's
count from this file. The tally reads what the API holds of each IP (the
source's ``held``: for Kubernetes its watch cache), so an IP becomes usable
in the file only once the API holds it usable: a rise is written after the
reporter's status write has reached the API (the watch event, or the
reporter's ``after_report``, wakes this thread); a fall is written at once,
before the report. A failed or lost status write leaves the file where the
API is: the IP is not advertised until the write lands (the reporter retries
with backoff, its full pass repairs a lost one)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from core.models import SubnetStatus

from .capacity import CapacityVerdict, render, tally
from .held import held_status
from .ipsource import NodeIpSource
from .metrics import Metrics
from .pool import PoolState

log = logging.getLogger(__name__)

SubnetStatuses = Callable[[], Sequence[SubnetStatus] | None]
PoolReader = Callable[[], PoolState]  # a consistent copy of the agent's pool state
HeldReader = Callable[[], Mapping[str, str] | None]  # ip -> phase the API holds


def held_phases(source: object) -> Mapping[str, str] | None:
    """ip -> ``VpcIP.status.phase`` as the source last saw the API hold it
    (``""``: none yet); None when the source cannot tell (``held.held_status``)."""
    held = held_status(source)
    if held is None:
        return None
    return {ip: str(status.get("phase") or "") for ip, status in held.items()}


def pool_reader(lock: threading.Lock, state: PoolState) -> PoolReader:
    """Copies what the tally reads of ``state`` under the agent's ``lock``."""

    def read() -> PoolState:
        with lock:
            return PoolState(
                allocations=dict(state.allocations),
                cooldown=dict(state.cooldown),
                released=set(state.released),
                early_reuse=state.early_reuse,
            )

    return read


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
    """Keeps ``path`` equal to ``render(tally(view, pool(), subnets(), now, held()))``.

    ``update()`` runs on the publisher's thread, woken by ``poke()`` (the
    view follower on every change of the node's ENIs/IPs, the agent after an
    ADD or DEL, the subnet status watch), at the next cooldown or floor end,
    and every ``resync`` seconds (which also restores a deleted file). A
    failed write is logged and retried on the next pass. ``pool``: the
    agent's pool state (``pool_reader``); without it nothing is in use or
    cooling. ``held``: what the API holds of each IP's phase (``held_phases``
    of the source by default): an IP counts warm only once the API says so
    too (``capacity.tally``)."""

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
        self.pool: PoolReader = PoolState
        self.held: HeldReader = lambda: held_phases(source)
        self.resync = resync
        self.last: CapacityVerdict | None = None
        self.writes = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def poke(self) -> None:
        """Recompute soon (on the publisher's thread); never blocks."""
        self._wake.set()

    def update(self) -> CapacityVerdict:
        with self._lock:
            # read before the pool: an IP the pool frees between the two reads
            # is held back by the older phase (the next watch event re-runs this)
            held = self.held()
            verdict = tally(self.source.view(), self.pool(), self.subnets(), time.time(), held)
            try:
                wrote = write_atomic_if_changed(self.path, render(verdict))
            except OSError as exc:
                self.metrics.capacity_writes.labels("error").inc()
                log.error(
                    "cannot write the device plugin capacity file",
                    extra={"path": self.path, "error": str(exc)},
                )
                return verdict
            self.metrics.usable_ips.set(verdict.warm)
            if wrote:
                self.writes += 1
                self.metrics.capacity_writes.labels("ok").inc()
            last = self.last
            if verdict.behind and (last is None or last.behind != verdict.behind):
                log.debug(
                    "usable IPs wait for the API",
                    extra={"ips": verdict.behind, "tally": str(verdict.tally)},
                )
            if last is None or (last.reason, last.zones) != (verdict.reason, verdict.zones):
                log.info(
                    "device plugin capacity",
                    extra={
                        "path": self.path,
                        "tally": str(verdict.tally),
                        "reason": verdict.reason,
                        "zones": list(verdict.zones),
                        "written": wrote,
                    },
                )
            self.last = verdict
            return verdict

    def _follow_view(self) -> None:
        generation = self.source.view().generation
        while not self._stop.is_set():
            view = self.source.wait_for_change(generation, 1.0)  # 1 s: notice stop()
            if view.generation != generation:
                generation = view.generation
                self.poke()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            timeout = max(0.0, self.resync - (time.monotonic() - last))
            nxt = self.last.next_change if self.last is not None else None
            if nxt is not None:
                timeout = min(timeout, max(0.0, nxt - time.time()) + 0.001)
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            last = time.monotonic()
            self.update()

    def start(self) -> None:
        self.update()
        for target, name in ((self._run, "capacity-file"), (self._follow_view, "capacity-view")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop following (the file stays: the device plugin keeps its values)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
