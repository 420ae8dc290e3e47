"""A kubelet stand-in for device-plugin tests and the benchmark: the device-manager
side of a real kubelet over real gRPC on unix sockets, speaking the kubelet's own
device-plugin API (harness.deviceplugin_api).

- serves ``/v1beta1.Registration/Register`` on ``<dir>/kubelet.sock``;
- Register is synchronous: inside it the stand-in dials the plugin's socket
  (``<dir>/<endpoint>``, 10 s, blocking) and calls GetDevicePluginOptions,
  failing the Register if that does not answer; it checks the version and
  that the resource name is an extended resource name;
- then it opens ListAndWatch; every message REPLACES the device set;
  capacity = healthy + unhealthy, allocatable = healthy; when the stream
  ends all devices turn unhealthy (capacity kept), and it never re-dials;
- ``allocate()`` calls GetPreferredAllocation (only when advertised) and
  then one Allocate per container with exactly one ContainerAllocateRequest,
  failing if ``container_responses`` is empty;
- ``restart()``: stops, deletes the socket files in the directory (never the
  checkpoint), capacity reads 0, and serves a fresh kubelet.sock.

Every change of capacity is time-stamped in ``timeline`` so tests and the
benchmark can print how long the resource was missing.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc

from harness.deviceplugin_api import DevicePluginClient, messages, registration_handler

KUBELET_SOCKET = "kubelet.sock"
CHECKPOINT = "kubelet_internal_checkpoint"
VERSION = "v1beta1"


@dataclass
class Endpoint:
    """One registered plugin, as the kubelet's device manager holds it."""

    resource: str
    endpoint: str
    options: Any  # DevicePluginOptions
    channel: grpc.Channel
    stub: DevicePluginClient
    devices: dict[str, str] = field(default_factory=dict)  # id → health
    stream: Any = None  # the ListAndWatch call (cancellable)
    stream_open: bool = False
    messages: int = 0
    first_list: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic()
    resource: str
    capacity: int
    allocatable: int
    why: str


class KubeletStandin:
    def __init__(self, plugin_dir: str, *, write_checkpoint: bool = True) -> None:
        self.dir = plugin_dir
        self.socket_path = os.path.join(plugin_dir, KUBELET_SOCKET)
        self.write_checkpoint = write_checkpoint
        self._lock = threading.Condition()
        self._server: grpc.Server | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.registrations: list[tuple[float, str, str]] = []  # (t, resource, endpoint)
        self.register_errors: list[str] = []
        self.timeline: list[Sample] = []
        self.restarts: list[float] = []
        self.allocated: dict[str, set[str]] = {}

    # --- lifecycle ---
    def start(self) -> KubeletStandin:
        os.makedirs(self.dir, exist_ok=True)
        if self.write_checkpoint and not os.path.exists(os.path.join(self.dir, CHECKPOINT)):
            with open(os.path.join(self.dir, CHECKPOINT), "w") as f:
                f.write('{"Data":{"PodDeviceEntries":null,"RegisteredDevices":{}},"Checksum":0}')
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="kubelet"))
        server.add_generic_rpc_handlers((registration_handler(self._on_register),))
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self, *, remove_socket: bool = True) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=0).wait(5)
        with self._lock:
            endpoints = list(self.endpoints.values())
            self.endpoints.clear()
            for ep in endpoints:
                self._record(ep.resource, 0, 0, "kubelet stopped")
        for ep in endpoints:
            self._close(ep)
        if remove_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    def restart(self) -> None:
        """A kubelet restart: stop, delete every socket file in the directory
        (the checkpoint stays), then serve a fresh kubelet.sock."""
        self.restarts.append(time.monotonic())
        self.stop()
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
        self.start()

    def __enter__(self) -> KubeletStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what a node status would show ---
    def capacity(self, resource: str) -> int:
        with self._lock:
            ep = self.endpoints.get(resource)
            return len(ep.devices) if ep else 0

    def allocatable(self, resource: str) -> int:
        with self._lock:
            ep = self.endpoints.get(resource)
            return sum(1 for h in ep.devices.values() if h == "Healthy") if ep else 0

    def devices(self, resource: str) -> dict[str, str]:
        with self._lock:
            ep = self.endpoints.get(resource)
            return dict(ep.devices) if ep else {}

    def endpoint(self, resource: str) -> Endpoint | None:
        with self._lock:
            return self.endpoints.get(resource)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every change)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
            return True

    def wait_capacity(
        self,
        resource: str,
        capacity: int,
        allocatable: int | None = None,
        timeout: float = 10.0,
        *,
        streaming: bool = True,
    ) -> bool:
        """Wait for this capacity/allocatable (with the stream open, unless
        ``streaming=False``: e.g. the state after the plugin went away)."""

        def ok() -> bool:
            ep = self.endpoints.get(resource)
            if ep is None or ep.stream_open != streaming or len(ep.devices) != capacity:
                return False
            healthy = sum(1 for h in ep.devices.values() if h == "Healthy")
            return allocatable is None or healthy == allocatable

        return self.wait_for(ok, timeout)

    # --- pod admission ---
    def allocate(self, resource: str, count: int) -> Any:
        """Admit one container asking for ``count`` devices, as the kubelet does; the
        plugin's ContainerAllocateResponse."""
        pb = messages()
        ep = self.endpoint(resource)
        if ep is None:
            raise RuntimeError(f"resource {resource} is not registered")
        with self._lock:
            used = self.allocated.setdefault(resource, set())
            free = sorted(i for i, h in ep.devices.items() if h == "Healthy" and i not in used)
            if len(free) < count:
                raise RuntimeError(f"{resource}: {count} requested, {len(free)} free")
        chosen = free[:count]
        if ep.options.get_preferred_allocation_available:
            pref = ep.stub.GetPreferredAllocation(
                pb.PreferredAllocationRequest(
                    container_requests=[
                        pb.ContainerPreferredAllocationRequest(
                            available_deviceIDs=free, allocation_size=count
                        )
                    ]
                )
            )
            picked = list(pref.container_responses[0].deviceIDs)
            if len(picked) == count and set(picked) <= set(free):
                chosen = picked
        resp = ep.stub.Allocate(
            pb.AllocateRequest(container_requests=[pb.ContainerAllocateRequest(devices_ids=chosen)])
        )
        if not resp.container_responses:
            raise RuntimeError("plugin returned an empty AllocateResponse")
        with self._lock:
            used.update(chosen)
        return resp.container_responses[0]

    # --- internals ---
    def _record(self, resource: str, capacity: int, allocatable: int, why: str) -> None:
        self.timeline.append(Sample(time.monotonic(), resource, capacity, allocatable, why))
        self._lock.notify_all()

    def _on_register(self, request: Any, context: grpc.ServicerContext) -> Any:
        """``/v1beta1.Registration/Register``."""
        error = self._register(request)
        if error is not None:
            self.register_errors.append(error)
            context.abort(grpc.StatusCode.UNKNOWN, error)
        return messages().Empty()

    def _register(self, request: Any) -> str | None:
        """What the kubelet's device manager does inside Register; an error text or None."""
        if request.version != VERSION:
            return f"unsupported device plugin version {request.version!r}"
        domain, slash, name = request.resource_name.partition("/")
        if not slash or "." not in domain or not name or domain.endswith("kubernetes.io"):
            return f"invalid extended resource name {request.resource_name!r}"
        if not request.endpoint or "/" in request.endpoint:
            return f"invalid endpoint {request.endpoint!r}"
        path = os.path.join(self.dir, request.endpoint)
        channel = grpc.insecure_channel(f"unix://{path}")
        try:
            # a blocking dial (10 s) and GetDevicePluginOptions, inside Register
            stub = DevicePluginClient(channel)
            options = stub.GetDevicePluginOptions(
                messages().Empty(), timeout=10, wait_for_ready=True
            )
        except grpc.RpcError as exc:
            channel.close()
            return f"failed to dial device plugin {path}: {exc}"
        ep = Endpoint(request.resource_name, request.endpoint, options, channel, stub)
        with self._lock:
            old = self.endpoints.get(request.resource_name)
            self.endpoints[request.resource_name] = ep
            self.registrations.append((time.monotonic(), request.resource_name, request.endpoint))
        if old is not None:
            self._close(old)
        # like the kubelet's endpoint goroutine: ListAndWatch runs after Register returns
        threading.Thread(target=self._watch, args=(ep,), daemon=True, name="kubelet-lw").start()
        return None

    def _watch(self, ep: Endpoint) -> None:
        call = ep.stub.ListAndWatch(messages().Empty())
        ep.stream = call
        ep.stream_open = True
        try:
            for msg in call:
                with self._lock:
                    if self.endpoints.get(ep.resource) is not ep:
                        break
                    ep.devices = {d.ID: d.health for d in msg.devices}  # replaces the set
                    ep.messages += 1
                    healthy = sum(1 for h in ep.devices.values() if h == "Healthy")
                    self._record(ep.resource, len(ep.devices), healthy, "ListAndWatch")
                ep.first_list.set()
        except grpc.RpcError:
            pass
        finally:
            ep.first_list.set()
            with self._lock:
                ep.stream_open = False
                if self.endpoints.get(ep.resource) is ep:
                    # stream ended: every device unhealthy at once, capacity kept
                    ep.devices = dict.fromkeys(ep.devices, "Unhealthy")
                    self._record(ep.resource, len(ep.devices), 0, "stream ended")
                else:
                    self._lock.notify_all()

    def _close(self, ep: Endpoint) -> None:
        if ep.stream is not None:
            ep.stream.cancel()
        ep.channel.close()

    # --- figures ---
    def gaps(self, resource: str) -> list[float]:
        """Seconds the resource had no allocatable device, per restart."""
        out: list[float] = []
        for t0 in self.restarts:
            after = [
                s.t for s in self.timeline if s.resource == resource and s.t >= t0 and s.allocatable
            ]
            out.append((after[0] - t0) if after else float("inf"))
        return out


@contextlib.contextmanager
def running_kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    kubelet = KubeletStandin(plugin_dir).start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
