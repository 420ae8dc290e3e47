"""Enter a network namespace for the current thread only (``setns(2)`` is
per-thread), and come back. pyroute2's ``pushns``/``popns`` keep one global
stack and read ``/proc/self`` (the main thread), which is wrong when several
request threads switch namespaces at once; this helper uses
``/proc/thread-self`` and a per-call saved fd instead."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsGoneError(Exception):
    """The namespace path does not exist (any more)."""


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


@contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the block with this thread in the netns at ``path``."""
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetnsGoneError(f"netns {path!r} does not exist") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise NetnsGoneError(f"netns {path!r} does not exist") from exc
        raise OSError(exc.errno, f"failed to open netns {path!r}: {exc.strerror}") from exc
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target, path)
        except OSError as exc:
            raise OSError(exc.errno, f"failed to enter netns {path!r}: {exc.strerror}") from exc
        try:
            yield
        finally:
            _setns(own, "back to the agent's netns")
    finally:
        os.close(target)
        os.close(own)


def open_netns(path: str) -> int:
    """An fd for ``path`` (caller closes), NetnsGoneError if missing."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetnsGoneError(f"netns {path!r} does not exist") from exc
