"""Durable ``PoolState`` in one file: a log of whole-state snapshots, one JSON
object per line. A write appends a line and ``fdatasync``s it (~1 ms here,
against ~4.5 ms for temp file + fsync + rename + directory fsync); the file
is compacted to its last snapshot (written atomically: temp file, fsync,
rename, directory fsync) at start, at stop and when it grows past
``MAX_LOG``. Loading takes the last complete line: a write torn by a crash
was never acknowledged, so the snapshot before it is the truth.

A writer thread does the writes: ADD marks its reservation (``mark``),
plumbs the pod while the write happens, and waits (``wait``) before it
answers; concurrent changes share one write. DEL does not wait: a release
lost in a crash is redone at start-up, because the pod's link is gone."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .pool import PoolState

log = logging.getLogger(__name__)


class CheckpointError(Exception):
    pass


MAX_LOG = 4 << 20  # bytes of log before it is compacted


def _last_snapshot(data: bytes) -> dict[str, Any]:
    lines = [line for line in data.split(b"\n") if line.strip()]
    if not lines:
        raise ValueError("no snapshot in the file")
    try:
        snapshot = json.loads(lines[-1])
    except ValueError:
        if len(lines) < 2:
            raise
        snapshot = json.loads(lines[-2])  # the last write was torn: never acknowledged
    if not isinstance(snapshot, dict):
        raise ValueError("snapshot is not a JSON object")
    return snapshot


@dataclass(frozen=True, slots=True)
class Loaded:
    state: PoolState
    missing: bool = False  # no file: a first start (or a wiped state dir)
    unreadable: str = ""  # why the file could not be used ("" when it could)
    kept_as: str = ""  # where the unreadable file was moved


def load_checked(path: str) -> Loaded:
    """The saved state, and whether it could be trusted. An unreadable file
    (not JSON, not a snapshot, a version this agent does not know) is moved
    aside (``<path>.unreadable.<unix time in ns>``, kept for a post-mortem, never
    overwritten) and an empty state returned: the caller must then rebuild
    the allocations from the live links (``recover``), not trust it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return Loaded(PoolState(), missing=True)
    try:
        return Loaded(PoolState.from_dict(_last_snapshot(data)))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        aside = f"{path}.unreadable.{time.time_ns()}"
        os.replace(path, aside)
        return Loaded(PoolState(), unreadable=f"{type(exc).__name__}: {exc}", kept_as=aside)


def load(path: str) -> PoolState:
    """``load_checked``'s state (empty when missing or unreadable)."""
    return load_checked(path).state


def _fsync_dir(path: str) -> None:
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path)


class Checkpoint:
    """Writes the state in a writer thread. ``mark`` (under the caller's state
    lock) records a change and wakes the writer; ``wait(seq)`` returns once
    a write that includes change ``seq`` is on disk. Writes overlap with the
    caller's netlink work and concurrent changes share one write."""

    def __init__(self, path: str, snapshot: Callable[[], dict[str, Any]]) -> None:
        """``snapshot`` returns the state to save (it takes the state lock)."""
        self.path = path
        self._snapshot = snapshot
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._seq = 0  # changes made
        self._done = 0  # changes on disk
        self._error = ""
        self._thread: threading.Thread | None = None
        self._fd: int | None = None  # the log, open for appending
        self._size = 0
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def mark(self) -> int:
        """Record a change; returns its sequence number. Starts the writer (again,
        when the last one stopped: its waiters were told why)."""
        with self._cond:
            self._seq += 1
            if self._thread is None or not self._thread.is_alive():
                if self._thread is not None:
                    log.warning("checkpoint writer restarted", extra={"path": self.path})
                self._thread = threading.Thread(target=self._loop, name="checkpoint", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._seq

    def wait(self, seq: int, timeout: float = 30.0) -> None:
        """Return once change ``seq`` is durable; CheckpointError if writing fails."""
        with self._cond:
            self._cond.wait_for(lambda: self._done >= seq or bool(self._error), timeout)
            if self._done >= seq:
                return
            raise CheckpointError(self._error or f"checkpoint {self.path}: write timed out")

    def _write(self, compact: bool = False) -> int:
        with self._write_lock:
            with self._cond:
                upto = self._seq
            line = json.dumps(self._snapshot(), sort_keys=True).encode() + b"\n"
            if compact or self._fd is None or self._size + len(line) > MAX_LOG:
                self._compact(line)
            else:
                _write_all(self._fd, line)
                os.fdatasync(self._fd)
                self._size += len(line)
            return upto

    def _compact(self, line: bytes) -> None:
        """Replace the log by one snapshot and reopen it for appending."""
        write_atomic(self.path, line)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._size = len(line)

    def _loop(self) -> None:
        """Write until the process ends. A failed write (any exception: a full
        disk, a snapshot that cannot be encoded, a bug) is reported to the
        waiters at once and retried after a pause; should the thread still
        end, its waiters are told at once why (and the next ``mark`` starts
        another writer), never left to their timeout."""
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._seq > self._done)
                try:
                    upto = self._write()
                except Exception as exc:  # noqa: BLE001 - one write failed; the writer goes on
                    self._failed(exc)
                    time.sleep(1.0)
                    continue
                with self._cond:
                    self._done = max(self._done, upto)
                    self._error = ""
                    self._cond.notify_all()
        except BaseException as exc:
            with self._cond:
                self._error = f"checkpoint writer stopped: {type(exc).__name__}: {exc}"
                self._cond.notify_all()
            log.critical(
                "checkpoint writer stopped", extra={"path": self.path, "error": self._error}
            )
            raise

    def _failed(self, exc: Exception) -> None:
        what = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        with self._cond:
            self._error = f"failed to write checkpoint {self.path}: {what}"
            self._cond.notify_all()
        log.error(
            "checkpoint write failed",
            exc_info=not isinstance(exc, OSError),  # a bug: its traceback
            extra={"path": self.path, "error": what, "pending": self._seq - self._done},
        )

    def flush(self) -> None:
        """Write the current state now as a fresh, compacted file (start, stop)."""
        try:
            upto = self._write(compact=True)
        except OSError as exc:
            raise CheckpointError(f"failed to write checkpoint {self.path}: {exc}") from exc
        with self._cond:
            self._done = max(self._done, upto)
            self._cond.notify_all()
