"""Network namespaces for local nodes: the node's own netns and a shared "VPC" fabric.

Each node gets ``eth0`` (its node IP) on a veth whose peer sits on a bridge in a fabric
namespace all nodes share, so nodes reach each other without touching the host's links.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from pathlib import Path

from localnode.proc import ProcessError, run

NETNS_DIR = Path("/run/netns")
IP = "/usr/sbin/ip"
CLONE_NEWNET = 0x40000000


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return netns_path(name).exists()


def create(name: str) -> None:
    """Create the namespace (idempotent) with loopback up."""
    if not exists(name):
        run([IP, "netns", "add", name])
    run([IP, "-n", name, "link", "set", "lo", "up"])


def delete(name: str) -> None:
    if exists(name):
        run([IP, "netns", "delete", name])


def pids_in(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (compared by nsfs inode)."""
    try:
        target = os.stat(netns_path(name))
    except FileNotFoundError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                st = os.stat(entry / "ns" / "net")
            except OSError:
                continue
            if (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
                pids.append(int(entry.name))
    return pids


def ip(netns: str, *args: str) -> str:
    return run([IP, "-n", netns, *args])


def ensure_fabric(fabric: str, bridge: str = "vpc0") -> None:
    """The shared fabric namespace with one bridge (idempotent)."""
    create(fabric)
    if bridge not in ip(fabric, "-o", "link", "show"):
        ip(fabric, "link", "add", bridge, "type", "bridge")
    ip(fabric, "link", "set", bridge, "up")


def attach(node_netns: str, fabric: str, *, port: str, address_cidr: str,
           bridge: str = "vpc0", ifname: str = "eth0", gateway: str = "") -> None:
    """Give the node ``ifname`` with ``address_cidr``; its peer ``port`` joins the bridge."""
    links = ip(fabric, "-o", "link", "show")
    if f" {port}@" in links or f" {port}:" in links:
        ip(fabric, "link", "delete", port)
    ip(fabric, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", node_netns)
    ip(fabric, "link", "set", port, "master", bridge, "up")
    ip(node_netns, "addr", "add", address_cidr, "dev", ifname)
    ip(node_netns, "link", "set", ifname, "up")
    if gateway:
        ip(node_netns, "route", "replace", "default", "via", gateway, "dev", ifname)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def setns(fd: int) -> None:
    if _libc().setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise ProcessError(f"setns(fd {fd}, CLONE_NEWNET) failed: {os.strerror(err)}")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block with THIS THREAD in the netns at ``path`` (only while single-threaded)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        os.close(home)
        raise ProcessError(f"failed to open netns {path!r}: {exc}") from exc
    try:
        setns(target)
        yield
    finally:
        setns(home)
        os.close(target)
        os.close(home)
