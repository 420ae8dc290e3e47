"""A mount namespace per node, so each node has its own ``/var/lib/kubelet/device-plugins``.

The kubelet's device-plugin registration socket is fixed at
``/var/lib/kubelet/device-plugins/kubelet.sock`` whatever ``--root-dir`` says (kubelet
1.33: "Creating Device Plugin manager" path=/var/lib/kubelet/device-plugins/kubelet.sock),
so two kubelets on one machine would share it. Every daemon of a node (containerd and its
shims, kubelet, device plugin, agent) runs in the node's mount namespace, where that path
is a bind mount of the node's own dir. The namespace is pinned by a bind mount of its
nsfs file (like ``ip netns``), so it outlives any one process; deleting it drops every
mount the node made (container rootfs, pod netns files, kubelet volumes) at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from localnode.proc import ProcessError, run

MNTNS_DIR = Path("/run/tke-localnode/mntns")
UNSHARE = "/usr/bin/unshare"


def _is_mountpoint(path: Path) -> bool:
    target = str(path)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == target:
            return True
    return False


def _ensure_dir() -> None:
    """The pin dir must be a private mount (the kernel refuses nsfs binds that could loop)."""
    MNTNS_DIR.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(MNTNS_DIR):
        run(["mount", "--bind", str(MNTNS_DIR), str(MNTNS_DIR)])
    run(["mount", "--make-private", str(MNTNS_DIR)])


def path_of(name: str) -> Path:
    return MNTNS_DIR / name


def exists(name: str) -> bool:
    return _is_mountpoint(path_of(name))


def create(name: str, binds: Sequence[tuple[Path, Path]], shared: Sequence[Path] = ()) -> Path:
    """A new mount namespace (propagation unchanged: /run/netns stays shared with the host)
    with each ``(source, target)`` bind-mounted inside it only. A target that is a mount
    point shared with the host (e.g. ``/run/netns``) is made private in the new namespace
    first, so the bind never propagates back. Targets in ``shared`` become shared mounts
    of their own (mounts made under them reach slave mounts, e.g. a container's hostPath
    with mountPropagation HostToContainer)."""
    delete(name)
    _ensure_dir()
    pin = path_of(name)
    pin.touch()
    script = ["set -e"]
    if shared:
        # nothing made in here may reach the host: detach every mount from the host's
        # peer groups first (the shared mounts below are peer groups of their own)
        script.append("mount --make-rprivate /")
    for source, target in binds:
        source.mkdir(parents=True, exist_ok=True)
        target.mkdir(parents=True, exist_ok=True)
        if _is_mountpoint(target) and not shared:
            script.append(f"mount --make-rprivate '{target}'")
        script.append(f"mount --bind '{source}' '{target}'")
        if target in shared:
            script.append(f"mount --make-shared '{target}'")
    if shared:
        # the runtime checks a hostPath with mountPropagation against the mount it finds
        # by path; /var/run/netns is a symlinked path, found as "/": make the namespace's
        # own / shared too (its own peer group: the host's / is private and stays so)
        script.append("mount --make-shared /")
    try:
        run([UNSHARE, f"--mount={pin}", "--propagation", "unchanged", "--",
             "/bin/sh", "-c", "; ".join(script)])
    except ProcessError:
        with contextlib.suppress(OSError):
            pin.unlink()
        raise
    return pin


def delete(name: str) -> None:
    pin = path_of(name)
    if _is_mountpoint(pin):
        run(["umount", str(pin)])
    with contextlib.suppress(FileNotFoundError):
        pin.unlink()
