"""The node's cgroup root (cgroup v1 hierarchies, plus the unified one when mounted).

The kubelet refuses a ``cgroupRoot`` that does not exist, so it is created in every
mounted hierarchy first (cpuset gets its parent's cpus/mems); clean-up kills what is
left inside it and removes it bottom-up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def hierarchies() -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 filesystem."""
    points: list[Path] = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] in ("cgroup", "cgroup2"):
            points.append(Path(parts[1]))
    return points


def _rel(root: str) -> str:
    return root.strip("/")


def create(root: str) -> None:
    for h in hierarchies():
        d = h / _rel(root)
        d.mkdir(parents=True, exist_ok=True)
        if (h / "cpuset.cpus").exists():
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (d / f).read_text().strip():
                    (d / f).write_text((h / f).read_text())


def pids_in(root: str) -> list[int]:
    pids: set[int] = set()
    for h in hierarchies():
        top = h / _rel(root)
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                for tok in (Path(dirpath) / "cgroup.procs").read_text().split():
                    pids.add(int(tok))
    pids.discard(os.getpid())
    return sorted(pids)


def destroy(root: str, timeout: float = 15.0) -> list[str]:
    """Kill every process in the node's cgroups and remove them; return what is left."""
    deadline = time.monotonic() + timeout
    _thaw(root)
    while pids := pids_in(root):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return _remove(root)


def _thaw(root: str) -> None:
    for h in hierarchies():
        frozen = h / _rel(root)
        if (frozen / "freezer.state").exists():
            for dirpath, _d, _f in os.walk(frozen):
                with contextlib.suppress(OSError):
                    (Path(dirpath) / "freezer.state").write_text("THAWED")


def _remove(root: str) -> list[str]:
    left: list[str] = []
    for h in hierarchies():
        top = h / _rel(root)
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False),
                                             key=lambda t: -len(t[0])):
            for _ in range(50):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
            else:
                left.append(dirpath)
    return left
