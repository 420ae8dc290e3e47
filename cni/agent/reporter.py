"""Publish IP usage to the IP source (``VpcIP.status``) off the CNI hot path:
ADD/DEL only poke this thread; it sends what changed since the last good
report, retrying with backoff."""

from __future__ import annotations

import logging
import threading
import time

from . import pool
from .agent import Agent
from .ipsource import IpUsage

log = logging.getLogger(__name__)


class Reporter:
    def __init__(self, agent: Agent, interval: float = 30.0, debounce: float = 0.2) -> None:
        self.agent = agent
        self.interval = interval
        self.debounce = debounce  # let a burst of CNI calls finish, then report once
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sent: dict[str, IpUsage] = {}
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        self._wake.set()

    def run_once(self) -> None:
        a = self.agent
        view = a.source.view()
        with a.lock:
            current = pool.usage(view, a.state, time.time())
        changed = [u for u in current if self._sent.get(u.ip) != u]
        if not changed:
            return
        a.source.report(changed)
        for u in changed:
            self._sent[u.ip] = u
        a.metrics.reports.labels("ok").inc()

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            if self._wake.wait(self.interval):
                self._stop.wait(self.debounce)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_once()
                backoff = 1.0
            except Exception as exc:  # noqa: BLE001 - the API may be down: retry later
                self.agent.metrics.reports.labels("error").inc()
                log.warning("usage report failed", extra={"error": str(exc), "retry_in": backoff})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="usage-reporter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
