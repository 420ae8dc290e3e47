"""Running the node's daemons: in a network namespace (nsenter, mount namespace kept),
logging to a file, stopped with TERM then KILL and always waited for."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

NSENTER = "/usr/bin/nsenter"


class ProcessError(RuntimeError):
    """A node daemon or tool failed; the message carries its command and output."""


def run(cmd: Sequence[str], timeout: float = 60.0, netns: str | None = None,
        env: dict[str, str] | None = None, mntns: str | None = None) -> str:
    """Run a tool to completion; return stdout, raise ProcessError with stderr on failure."""
    argv = ns_argv(cmd, netns=netns, mntns=mntns)
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                           env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProcessError(f"{' '.join(argv)}: {exc}") from exc
    if r.returncode != 0:
        raise ProcessError(f"{' '.join(argv)} exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()}")
    return r.stdout


def ns_argv(cmd: Sequence[str], netns: str | None = None,
            mntns: str | None = None) -> list[str]:
    """Enter the node's namespaces with nsenter (not `ip netns exec`: that unshares a new
    mount namespace and remounts /sys, which hides /sys/fs/cgroup from the kubelet)."""
    if not netns and not mntns:
        return list(cmd)
    argv = [NSENTER]
    if mntns:
        argv.append(f"--mount={mntns}")
    if netns:
        argv.append(f"--net={netns if netns.startswith('/') else '/run/netns/' + netns}")
    return [*argv, "--", *cmd]


class Daemon:
    """A long-running child in its own process group, its output appended to ``log``."""

    def __init__(self, name: str, cmd: Sequence[str], log: Path, *, netns: str | None = None,
                 env: dict[str, str] | None = None, mntns: str | None = None) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.log = log
        self.netns = netns
        self.mntns = mntns
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start {' '.join(self.cmd)}\n".encode())
            out.flush()
            try:
                self.proc = subprocess.Popen(ns_argv(self.cmd, self.netns, self.mntns), stdout=out,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True, env=self.env)
            except OSError as exc:
                raise ProcessError(f"cannot start {self.name} ({self.cmd[0]}): {exc}") from exc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessError(f"{self.name} exited with {self.proc.returncode}; "
                               f"log {self.log}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """TERM the process group, KILL after ``timeout``, and wait for the exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # children left in the group (nsenter execs, so normally none)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


def pids_with_arg(needle: str) -> list[int]:
    """Pids whose command line contains ``needle`` (a path unique to one node)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and int(entry.name) != os.getpid():
            out.append(int(entry.name))
    return out


def kill_and_wait(pids: Sequence[int], timeout: float = 10.0) -> None:
    """KILL the given pids (not our children: poll /proc until they are gone)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
        time.sleep(0.05)
