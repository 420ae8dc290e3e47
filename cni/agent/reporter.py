"""Publish IP usage to the IP source (``VpcIP.status``) off the CNI hot path.
ADD/DEL only poke this thread, which then sends what changed since its last
good report; it also wakes when a cooldown (or its floor) ends, so the IP is
reported ``Free`` at once. Every ``interval`` seconds a full pass compares the whole usage
with what the API actually holds (the source's ``held``: for Kubernetes the
watch cache, no extra reads) and re-sends every IP that differs: a VpcIP
re-created under a running pod, a lost write or a hand edit is repaired
without any change on the node, and a node in sync writes nothing. A
source that cannot tell what it holds gets everything re-sent.

``after_report`` (the capacity feed's poke) runs after each status write the
API accepted: the device plugin's capacity file counts an IP usable only once
the API holds it so (``capacity_file``), and a source whose view does not
change with its own status writes (the file source) needs this wake-up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import pool
from .agent import Agent
from .held import held_status
from .ipsource import IpUsage

log = logging.getLogger(__name__)

# the status fields the agent owns and compares (``cooldownUntil`` is sent
# with its phase but not compared: the API holds it rounded to seconds)
COMPARED = ("phase", "podNamespace", "podName", "podUid", "containerId", "releaseId")


def matches(u: IpUsage, held: dict[str, Any] | None) -> bool:
    """True when the API's status of ``u.ip`` already says what ``u`` says."""
    if held is None:
        return False
    want = u.to_dict()
    return all((want.get(k) or None) == (held.get(k) or None) for k in COMPARED)


class Reporter:
    def __init__(self, agent: Agent, interval: float = 30.0, debounce: float = 0.2) -> None:
        self.agent = agent
        self.interval = interval
        self.debounce = debounce  # let a burst of CNI calls finish, then report once
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sent: dict[str, IpUsage] = {}
        self._last_full = 0.0  # monotonic time of the last good full pass
        self._thread: threading.Thread | None = None
        self.after_report: Callable[[], None] | None = None

    def poke(self) -> None:
        self._wake.set()

    def run_once(self, full: bool = False) -> None:
        """Send what changed since the last report; with ``full``, everything
        the API does not hold as the agent sees it."""
        a = self.agent
        view = a.source.view()
        with a.lock:
            current = pool.usage(view, a.state, time.time())
        if full:
            held = held_status(a.source)
            if held is None:
                changed = current
            else:
                changed = [u for u in current if not matches(u, held.get(u.ip))]
                repaired = [u.ip for u in changed if self._sent.get(u.ip) == u]
                if repaired:  # sent before, yet the API does not hold it
                    a.metrics.resent.inc(len(repaired))
                    log.warning("usage the API lost re-sent", extra={"ips": repaired})
        else:
            changed = [u for u in current if self._sent.get(u.ip) != u]
        if changed:
            a.source.report(changed)
            for u in changed:
                self._sent[u.ip] = u
            a.metrics.reports.labels("ok").inc()
            if self.after_report is not None:
                self.after_report()
        if full:
            self._last_full = time.monotonic()

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            if self._wake.wait(self._timeout()):
                self._stop.wait(self.debounce)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:  # a burst of pokes must not starve the full pass
                self.run_once(full=time.monotonic() - self._last_full >= self.interval)
                backoff = 1.0
            except Exception as exc:  # noqa: BLE001 - the API may be down: retry later
                self.agent.metrics.reports.labels("error").inc()
                log.warning("usage report failed", extra={"error": str(exc), "retry_in": backoff})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                self._wake.set()

    def _timeout(self) -> float:
        """Until the next full pass, or sooner when a cooldown (or its floor)
        ends: the IP is reported ``Free`` then, at once (the scheduler
        extender counts it usable from that report)."""
        a = self.agent
        now = time.time()
        with a.lock:
            nxt = pool.next_cooldown_change(a.state, now)
        if nxt is None:
            return self.interval
        return min(self.interval, max(0.0, nxt - now) + 0.001)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="usage-reporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
