"""The eip resource's life beside the eni-ip plugin (``--eip``): serve
``EipServicer`` on its own socket, Register ``tke.cloud.tencent.com/eip`` with
the kubelet, re-register after every kubelet restart (our socket removed or
``kubelet.sock`` recreated), and keep the device count at
min(TOTAL_EIP_QUOTA, this node's eni-ip devices), read every
``--eip-quota-interval`` seconds through ``quota`` (None while unknown: the
count stays as it is; 0 until first known)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import grpc
from prometheus_client import CollectorRegistry

from core.eip import RESOURCE_EIP
from device_plugin.cloudlink import make_cloud
from device_plugin.eip import EipDevices, EipServicer
from device_plugin.identity import NodeIdentity
from device_plugin.kubelet import (
    RegistrationError,
    dial_self,
    register,
    remove_stale_socket,
    socket_id,
    stop_serving,
)
from device_plugin.settings import Settings
from protos.v1beta1 import api_pb2_grpc

if TYPE_CHECKING:
    from cloud.adapter import TencentCloud

log = logging.getLogger(__name__)


class EipPlugin:
    def __init__(
        self,
        plugin_dir: str,
        kubelet_socket: str,
        socket_name: str,
        *,
        quota: Callable[[], int | None],
        node_capacity: Callable[[], int],
        quota_interval: float = 60.0,
        watch_interval: float = 0.1,
        register_timeout: float = 10.0,
    ) -> None:
        plugin_dir = os.path.abspath(plugin_dir)
        self.socket_name = socket_name
        self.socket_path = os.path.join(plugin_dir, socket_name)
        self.kubelet_path = os.path.join(plugin_dir, kubelet_socket)
        self.quota = quota
        self.node_capacity = node_capacity
        self.quota_interval = quota_interval
        self.watch_interval = watch_interval
        self.register_timeout = register_timeout
        self.devices = EipDevices()
        self.registered = threading.Event()
        self.registrations = 0
        self._limit: int | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: grpc.Server | None = None
        self._servicer: EipServicer | None = None
        self._own_id: tuple[int, int, int] | None = None

    def start(self) -> None:
        for target, name in ((self._run, "eip-main"), (self._poll, "eip-quota")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.devices.poke()
        for t in self._threads:
            t.join(timeout)
        self._stop_server()

    # --- the count ---
    def refresh(self) -> None:
        """Read the quota once and set the count (errors: logged, count kept)."""
        try:
            limit = self.quota()
        except Exception as exc:  # noqa: BLE001 - any cloud error: keep the last count
            log.warning("EIP quota unreadable; keeping the count", extra={"error": str(exc)})
            return
        if limit is not None:
            self._limit = limit
        if self._limit is not None:
            self.devices.set(max(0, min(self._limit, self.node_capacity())))

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            # the node's capacity moves more often than the quota: follow it in between
            waited = 0.0
            while waited < self.quota_interval and not self._stop.wait(1.0):
                waited += 1.0
                if self._limit is not None:
                    self.devices.set(max(0, min(self._limit, self.node_capacity())))

    # --- serve / register / watch ---
    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            kubelet_id = socket_id(self.kubelet_path)
            if kubelet_id is None:
                self._stop.wait(self.watch_interval)
                continue
            try:
                self._serve()
                register(self.kubelet_path, self.socket_name, RESOURCE_EIP, self.register_timeout)
            except (RegistrationError, RuntimeError, OSError) as exc:
                log.warning("eip registration failed; retrying", extra={"error": str(exc)})
                self._stop_server()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            self.registrations += 1
            self.registered.set()
            log.info("registered with the kubelet", extra={"resource": RESOURCE_EIP})
            while not self._stop.wait(self.watch_interval):
                if socket_id(self.socket_path) != self._own_id:
                    break
                if socket_id(self.kubelet_path) != kubelet_id:
                    break
            self.registered.clear()
            self._stop_server()

    def _serve(self) -> None:
        self._stop_server()
        remove_stale_socket(self.socket_path)
        server = grpc.server(ThreadPoolExecutor(max_workers=4, thread_name_prefix="eip-grpc"))
        servicer = EipServicer(self.devices)
        api_pb2_grpc.add_DevicePluginServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server, self._servicer = server, servicer
        self._own_id = socket_id(self.socket_path)
        dial_self(self.socket_path, timeout=5.0)

    def _stop_server(self) -> None:
        server, servicer = self._server, self._servicer
        self._server = self._servicer = None
        stop_serving(server, servicer, self.socket_path, self._own_id)
        self._own_id = None


def quota_reader(
    settings: Settings,
    identity: Callable[[], NodeIdentity | None],
    registry: CollectorRegistry | None,
) -> Callable[[], int | None]:
    """DescribeAddressQuota's TOTAL_EIP_QUOTA limit through the cloud adapter
    (built once the node identity, hence the region, is known; None before)."""
    made: list[TencentCloud] = []

    def read() -> int | None:
        ident = identity()
        if ident is None:
            return None
        if not made:
            made.append(make_cloud(ident, settings, registry))  # the SDK's common client
        return made[0].eip_quota().limit

    return read
