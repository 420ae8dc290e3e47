"""Test support for ipamd's restart, leader and leak tests: ipamd in-process
with every work item it processed recorded, an optional wrapper around its
cloud (to hold a write in flight), and a TCP proxy in front of kube-apiserver
that can pass, reset or black-hole connections (a renew that fails or hangs)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cloud.adapter import TencentCloud
from cloud.hooks import CallHooks
from ipamd.app import App
from ipamd.kube.api import KubeApi, load_configuration
from tests.integration.ipamd_harness import settings_for, wait_for
from vpcsim.testing import EmulatorHandle

WRITES = (
    "create_eni",
    "attach_eni",
    "detach_eni",
    "delete_eni",
    "assign_ips",
    "unassign_ips",
    "migrate_ip",
)


class GatedCloud:
    """Delegates to ``inner``; while ``armed``, the next write waits in
    ``entered`` until ``release`` is set (a cloud write held in flight)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = threading.Event()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.in_flight = 0
        self.done: list[str] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name not in WRITES:
            return fn

        def write(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.in_flight += 1
            try:
                if self.armed.is_set():
                    self.armed.clear()
                    self.entered.set()
                    self.release.wait(60)
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.in_flight -= 1
                    self.done.append(name)

        return write


@contextlib.contextmanager
def ipamd_recording(
    emu: EmulatorHandle,
    kubeconfig: Path,
    *extra: str,
    wrap: Callable[[Any], Any] | None = None,
    wait_ready: bool = True,
) -> Iterator[tuple[App, list[str]]]:
    """ipamd's App in this process; yields it and the keys it processed (in order)."""
    s = settings_for(emu, kubeconfig, *extra)

    def make_cloud(hooks: CallHooks) -> Any:
        cloud = TencentCloud.from_settings(s.cloud, hooks=hooks)
        return wrap(cloud) if wrap is not None else cloud

    app = App(s, KubeApi(load_configuration(str(kubeconfig))), make_cloud)
    seen: list[str] = []
    process = app.process

    def recording(key: str) -> None:
        try:
            process(key)
        finally:
            seen.append(key)

    app.process = recording  # type: ignore[method-assign]
    t = threading.Thread(target=app.run, name=f"ipamd-{s.identity}", daemon=True)
    t.start()
    try:
        if wait_ready:
            wait_for("ipamd ready", app.ready.is_set, 60)
        yield app, seen
    finally:
        app.stop.set()
        t.join(20)


class TcpProxy:
    """127.0.0.1:<port> → ``target`` (host, port). Modes: ``pass`` forwards;
    ``reset`` closes every connection (and new ones) at once; ``hold`` accepts
    and swallows bytes without forwarding, so requests never get an answer."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "pass"
        self.rejected = 0
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._srv.getsockname()[1])
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def _accept(self) -> None:
        self._srv.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "reset":
                with self._lock:
                    self.rejected += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self.mode == "hold":
                continue
            if self.mode == "reset":
                with self._lock:
                    self.rejected += 1
                break
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._srv.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.close()
