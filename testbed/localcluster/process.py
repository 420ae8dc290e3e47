"""Run one program in the background: own session, log file, pid, clean stop."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def process_alive(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3 (after the parenthesised command, which may hold spaces) is the state.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (identifies it across pid reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ("" if it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """A started program. ``stop()`` is idempotent and always reaps it."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    pid: int = 0
    start_ticks: int | None = None

    @classmethod
    def start(cls, name: str, argv: Sequence[str], log_path: Path,
              env: Mapping[str, str] | None = None, cwd: Path | None = None) -> ManagedProcess:
        """Start ``argv`` in its own session with stdout+stderr appended to ``log_path``."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            out.write(f"# {' '.join(argv)}\n".encode())
            out.flush()
            try:
                popen = subprocess.Popen(
                    list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
                )
            except OSError as exc:
                raise RuntimeError(f"cannot start {name} ({argv[0]}): {exc}") from exc
        proc = cls(name=name, argv=list(argv), log_path=log_path, popen=popen, pid=popen.pid)
        proc.start_ticks = process_start_ticks(popen.pid)
        log.info("started %s pid=%d log=%s", name, popen.pid, log_path)
        return proc

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.is_same_process() and process_alive(self.pid)

    def is_same_process(self) -> bool:
        """True if ``pid`` still names the process we started (not a reused pid)."""
        return self.start_ticks is not None and process_start_ticks(self.pid) == self.start_ticks

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds, reap it."""
        if self.popen is None and not self.is_same_process():
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self._alive_or_group():
                break
            time.sleep(0.05)
        else:
            log.warning("%s pid=%d ignored SIGTERM for %.0fs: SIGKILL", self.name, self.pid, grace)
            self._signal_group(signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while self._alive_or_group() and time.monotonic() < kill_deadline:
                time.sleep(0.05)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        log.info("stopped %s pid=%d", self.name, self.pid)

    def _alive_or_group(self) -> bool:
        if self.popen is not None and self.popen.poll() is None:
            return True
        if self.popen is None and process_alive(self.pid):
            return True
        return bool(group_members(self.pid))

    def _signal_group(self, sig: signal.Signals) -> None:
        # The process leads its own session and group (start_new_session), so
        # the group id is its pid; children it forked get the signal too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members
