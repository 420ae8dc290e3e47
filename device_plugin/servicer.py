"""The ``v1beta1.DevicePlugin`` gRPC service.

ListAndWatch sends the full device list on open and again after every
change (each message replaces the set). Allocate answers one
ContainerAllocateResponse per container request and rejects ids this node
does not advertise with INVALID_ARGUMENT. A fresh servicer is built for each
serve cycle; ``close()`` ends its streams.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from device_plugin.devices import DeviceSet, device_index
from device_plugin.metrics import Metrics
from device_plugin.state import CapacityState
from protos.v1beta1 import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)

ENV_DEVICE_IDS = "TKE_ENI_IP_DEVICE_IDS"
STREAM_POLL_S = 1.0  # a stream re-checks for cancellation at least this often


def plugin_options() -> api_pb2.DevicePluginOptions:
    return api_pb2.DevicePluginOptions(
        pre_start_required=False, get_preferred_allocation_available=True
    )


def to_response(devices: DeviceSet) -> api_pb2.ListAndWatchResponse:
    return api_pb2.ListAndWatchResponse(
        devices=[api_pb2.Device(ID=i, health=h) for i, h in devices.devices()]
    )


def _sort_key(dev_id: str) -> tuple[int, str]:
    index = device_index(dev_id)
    return (index if index is not None else 1 << 30, dev_id)


def preferred_ids(
    creq: api_pb2.ContainerPreferredAllocationRequest, sort_key: Callable[[str], Any]
) -> list[str]:
    """One container's preferred devices: the required ids (once each, in order),
    then the available others in ``sort_key`` order up to ``allocation_size``
    (never fewer than the required ones)."""
    chosen = list(dict.fromkeys(creq.must_include_deviceIDs))
    for dev_id in sorted(set(creq.available_deviceIDs) - set(chosen), key=sort_key):
        if len(chosen) >= creq.allocation_size:
            break
        chosen.append(dev_id)
    return chosen


class BaseServicer(api_pb2_grpc.DevicePluginServicer):
    """The RPCs every resource of ours answers alike (eni-ip and eip)."""

    def GetDevicePluginOptions(  # noqa: N802 - gRPC method name
        self, request: api_pb2.Empty, context: grpc.ServicerContext
    ) -> api_pb2.DevicePluginOptions:
        return plugin_options()

    def PreStartContainer(  # noqa: N802 - gRPC method name
        self, request: api_pb2.PreStartContainerRequest, context: grpc.ServicerContext
    ) -> api_pb2.PreStartContainerResponse:
        return api_pb2.PreStartContainerResponse()


class DevicePluginServicer(BaseServicer):
    def __init__(self, state: CapacityState, metrics: Metrics, resource_name: str) -> None:
        self.state = state
        self.metrics = metrics
        self.resource_name = resource_name
        self._closed = threading.Event()
        self.streams_open = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._closed.set()
        self.state.poke()

    # --- RPCs ---
    def ListAndWatch(  # noqa: N802 - gRPC method name
        self, request: api_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[api_pb2.ListAndWatchResponse]:
        context.add_callback(self.state.poke)  # wake us when the kubelet goes away
        with self._lock:
            self.streams_open += 1
        try:
            snap = self.state.snapshot()
            log.info("ListAndWatch opened", extra={"devices": snap.devices.describe()})
            yield to_response(snap.devices)
            self.metrics.list_and_watch_sends.inc()
            version = snap.version
            while not self._closed.is_set() and context.is_active():
                snap = self.state.wait_changed(version, STREAM_POLL_S)
                if snap.version == version or self._closed.is_set():
                    continue
                version = snap.version
                yield to_response(snap.devices)
                self.metrics.list_and_watch_sends.inc()
                log.info("ListAndWatch sent update", extra={"devices": snap.devices.describe()})
        finally:
            with self._lock:
                self.streams_open -= 1
            log.info("ListAndWatch closed")

    def GetPreferredAllocation(  # noqa: N802 - gRPC method name
        self, request: api_pb2.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> api_pb2.PreferredAllocationResponse:
        responses = []
        for creq in request.container_requests:
            size = creq.allocation_size
            if size < 0:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{self.resource_name}: allocation_size must be >= 0, got {size}",
                )
            chosen = preferred_ids(creq, _sort_key)
            responses.append(api_pb2.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return api_pb2.PreferredAllocationResponse(container_responses=responses)

    def Allocate(  # noqa: N802 - gRPC method name
        self, request: api_pb2.AllocateRequest, context: grpc.ServicerContext
    ) -> api_pb2.AllocateResponse:
        start = time.perf_counter()
        try:
            response = self._allocate(request)
        except _RejectedError as exc:
            self.metrics.allocate_requests.labels("rejected").inc()
            log.warning("Allocate rejected", extra={"reason": exc.message})
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        self.metrics.allocate_requests.labels("ok").inc()
        self.metrics.allocate_seconds.observe(time.perf_counter() - start)
        return response

    def _allocate(self, request: api_pb2.AllocateRequest) -> api_pb2.AllocateResponse:
        if not request.container_requests:
            raise _RejectedError(f"{self.resource_name}: Allocate with no container_requests")
        devices = self.state.snapshot().devices
        responses = []
        allocated = 0
        for n, creq in enumerate(request.container_requests):
            ids = list(creq.devices_ids)
            if not ids:
                raise _RejectedError(
                    f"{self.resource_name}: container request {n} has no device ids"
                )
            if len(set(ids)) != len(ids):
                raise _RejectedError(
                    f"{self.resource_name}: container request {n} repeats a device id"
                )
            unknown = [i for i in ids if not devices.contains(i)]
            if unknown:
                shown = ", ".join(map(repr, unknown[:5]))
                raise _RejectedError(
                    f"{self.resource_name}: unknown device id(s) {shown}"
                    f" in container request {n}; this node advertises {devices.describe()}"
                )
            responses.append(
                api_pb2.ContainerAllocateResponse(envs={ENV_DEVICE_IDS: ",".join(ids)})
            )
            allocated += len(ids)
        self.metrics.allocations.inc(allocated)
        return api_pb2.AllocateResponse(container_responses=responses)


class _RejectedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
