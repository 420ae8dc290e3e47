"""Make a socket inside another network namespace (the VPC side of the emulator).

A socket belongs to the namespace its thread was in when it was created; the thread
enters the namespace only for that moment. Linux only, as root."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000


def _setns(fd: int, what: str) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns into {what} failed: {os.strerror(err)}")


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """This thread in the network namespace at ``path`` for the block."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
    except OSError as exc:
        os.close(home)
        raise OSError(exc.errno, f"network namespace {path}: {exc.strerror}") from exc
    try:
        _setns(target, path)
        yield
    finally:
        _setns(home, "the emulator's own network namespace")
        os.close(target)
        os.close(home)
