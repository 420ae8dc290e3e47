"""Mounts a node leaves behind (container rootfs, pod netns, kubelet volumes): find, unmount."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or under ``prefix``, deepest first."""
    base = str(prefix).rstrip("/")
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == base or point.startswith(base + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_all(prefix: Path) -> list[str]:
    """Lazily unmount everything under ``prefix``; return what could not be unmounted."""
    failed = []
    for _ in range(3):
        points = mounts_under(prefix)
        if not points:
            return []
        for point in points:
            r = subprocess.run(["umount", "-l", point], capture_output=True, text=True,
                               check=False)
            if r.returncode != 0 and "not mounted" not in r.stderr:
                failed.append(f"{point}: {r.stderr.strip()}")
    return failed or mounts_under(prefix)
