"""The ``tke.cloud.tencent.com/eip`` resource: a second ``v1beta1.DevicePlugin``
registered with the kubelet on its own socket (``--eip-socket-name``), beside
the eni-ip one. Each device is one pod's EIP; the count comes from the
account's EIP quota (DescribeAddressQuota ``TOTAL_EIP_QUOTA``), read every
``--eip-quota-interval`` seconds, bounded by this node's eni-ip devices (a pod
with an EIP takes an ENI IP too). The quota is the region's, not the node's:
every node advertises it, and ipamd's AllocateAddresses is the real gate (an
exhausted quota: a Warning event on the pod, retried).

Ids ``eip-000`` … are stable across restarts; ``EipDevices`` holds the count
and wakes the ListAndWatch streams when it changes."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import grpc

from core.eip import RESOURCE_EIP
from device_plugin.devices import numbered_id, numbered_index
from device_plugin.servicer import BaseServicer, preferred_ids
from protos.v1beta1 import api_pb2

log = logging.getLogger(__name__)
PREFIX = "eip-"
ENV_DEVICE_IDS = "TKE_EIP_DEVICE_IDS"
STREAM_POLL_S = 1.0


def eip_device_id(index: int) -> str:
    return numbered_id(PREFIX, index)


def eip_index(dev_id: str) -> int | None:
    return numbered_index(PREFIX, dev_id)


class EipDevices:
    """The advertised count (thread-safe); ``version`` bumps on every change."""

    def __init__(self, count: int = 0) -> None:
        self._cond = threading.Condition()
        self._count = count
        self.version = 1

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    def set(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"EIP device count must be >= 0, got {count}")
        with self._cond:
            if count == self._count:
                return
            log.info("eip devices changed", extra={"count": count, "previous": self._count})
            self._count = count
            self.version += 1
            self._cond.notify_all()

    def wait_changed(self, version: int, timeout: float) -> tuple[int, int]:
        with self._cond:
            if self.version == version:
                self._cond.wait(timeout)
            return self.version, self._count

    def poke(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _response(count: int) -> api_pb2.ListAndWatchResponse:
    return api_pb2.ListAndWatchResponse(
        devices=[api_pb2.Device(ID=eip_device_id(i), health="Healthy") for i in range(count)]
    )


class EipServicer(BaseServicer):
    def __init__(self, devices: EipDevices) -> None:
        self.devices = devices
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        self.devices.poke()

    def ListAndWatch(  # noqa: N802 - gRPC method name
        self, request: api_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[api_pb2.ListAndWatchResponse]:
        context.add_callback(self.devices.poke)
        version, count = self.devices.wait_changed(-1, 0)
        yield _response(count)
        while not self._closed.is_set() and context.is_active():
            now, count = self.devices.wait_changed(version, STREAM_POLL_S)
            if now != version and not self._closed.is_set():
                version = now
                yield _response(count)

    def GetPreferredAllocation(  # noqa: N802 - gRPC method name
        self, request: api_pb2.PreferredAllocationRequest, context: grpc.ServicerContext
    ) -> api_pb2.PreferredAllocationResponse:
        out = [
            api_pb2.ContainerPreferredAllocationResponse(
                deviceIDs=preferred_ids(creq, lambda d: eip_index(d) or 0)
            )
            for creq in request.container_requests
        ]
        return api_pb2.PreferredAllocationResponse(container_responses=out)

    def Allocate(  # noqa: N802 - gRPC method name
        self, request: api_pb2.AllocateRequest, context: grpc.ServicerContext
    ) -> api_pb2.AllocateResponse:
        count = self.devices.count
        responses = []
        for n, creq in enumerate(request.container_requests):
            ids = list(creq.devices_ids)
            bad = [i for i in ids if (eip_index(i) is None or (eip_index(i) or 0) >= count)]
            if not ids or bad:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{RESOURCE_EIP}: container request {n}: unknown device id(s) {bad[:5]!r}; "
                    f"this node advertises {count}",
                )
            responses.append(
                api_pb2.ContainerAllocateResponse(envs={ENV_DEVICE_IDS: ",".join(ids)})
            )
        return api_pb2.AllocateResponse(container_responses=responses)
