"""Run a function inside another network namespace, on a thread of its own.

A thread's network namespace is its own: a short-lived thread enters the namespace, runs
the function and ends, so the caller (and its other threads) never leave theirs."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def call_in_netns(path: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """``fn()`` with its thread in the network namespace at ``path``; its result or its
    exception. Raises OSError when the namespace cannot be entered."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {path}: {os.strerror(err)}")
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            out["error"] = exc

    t = threading.Thread(target=run, name=f"in-netns {path}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"call in netns {path} still running after {timeout:.0f}s")
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["value"]  # type: ignore[return-value]
