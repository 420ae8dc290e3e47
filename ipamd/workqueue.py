"""A keyed work queue (client-go style): a key is queued at most once, never
processed by two workers at once, re-queued if it changed while being
processed, and retried with per-key exponential backoff after a failure.

A failed round is governed by its backoff alone: a change seen while the key
was processing (often the watch event of the failed sync's own write) does not
bring it back early, or a sync that writes then fails would spin at the
apiserver. The retry reads the latest state anyway."""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.2, max_delay: float = 30.0) -> None:
        self._cv = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._backing_off: set[str] = set()  # processing keys whose round failed
        self._delayed: list[tuple[float, int, str]] = []
        self._seq = 0
        self._failures: dict[str, int] = {}
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cv:
            if key in self._processing:
                self._dirty.add(key)
                return
            if key in self._queued:
                return
            self._queued.add(key)
            self._queue.append(key)
            self._cv.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cv:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, key))
            self._cv.notify()

    def retry(self, key: str) -> float:
        """Re-queue after a failure with backoff; returns the delay."""
        with self._cv:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
            if key in self._processing:
                self._backing_off.add(key)
        delay = min(self.max_delay, self.base_delay * (2.0**n))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cv:
            self._failures.pop(key, None)

    def _promote(self) -> float | None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float = 1.0) -> str | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                wait = self._promote()
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutdown:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(min(left, wait) if wait is not None else left)

    def done(self, key: str) -> None:
        with self._cv:
            self._processing.discard(key)
            if key in self._backing_off:
                self._backing_off.discard(key)
                self._dirty.discard(key)  # the scheduled retry brings it back
            elif key in self._dirty:
                self._dirty.discard(key)
                self._queued.add(key)
                self._queue.append(key)
                self._cv.notify()

    def shutdown(self) -> None:
        with self._cv:
            self._shutdown = True
            self._cv.notify_all()

    def __len__(self) -> int:
        with self._cv:
            return len(self._queue) + len(self._delayed)
