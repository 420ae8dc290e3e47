"""The plugin's life: serve → dial our own socket → Register → watch, again
after every kubelet restart. Embeddable: ``start()`` runs it in threads of
the calling process, ``stop()`` ends the stream, stops the server and
removes the socket.

Restart detection is a watcher loop outside the gRPC server (a fresh server
per cycle): our socket file gone or replaced, or ``kubelet.sock`` recreated,
checked every ``watch_interval`` (default 0.1 s). A kubelet that is absent
or refuses Register is retried with exponential backoff (capped by
``register_backoff_max``), cut short as soon as ``kubelet.sock`` changes.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud.metadata import MetadataClient
from core.limits import EniLimits
from device_plugin.capacity import CapacityInputs
from device_plugin.capfile import CapacityFileWatcher
from device_plugin.cloudlink import ReaderFactory, make_instance_reader
from device_plugin.eipplugin import EipPlugin, quota_reader
from device_plugin.identity import MetadataReader
from device_plugin.kubelet import (
    RegistrationError,
    dial_self,
    register,
    remove_stale_socket,
    socket_id,
    stop_serving,
)
from device_plugin.limits import LimitsResolver
from device_plugin.metrics import Metrics
from device_plugin.servicer import DevicePluginServicer
from device_plugin.settings import Settings
from device_plugin.state import CapacityFeed, CapacityState
from kit.httpserve import StatusServer
from protos.v1beta1 import api_pb2_grpc

log = logging.getLogger(__name__)

SocketId = tuple[int, int, int]
SERVICE_NAME = "v1beta1.DevicePlugin"


class DevicePluginManager:
    def __init__(
        self,
        settings: Settings,
        *,
        metadata: MetadataReader | None = None,
        reader_factory: ReaderFactory | None = None,
        state: CapacityState | None = None,
    ) -> None:
        plugin_dir = os.path.abspath(settings.device_plugin_dir)
        self.settings = settings
        self.socket_path = os.path.join(plugin_dir, settings.socket_name)
        self.kubelet_path = os.path.join(plugin_dir, settings.kubelet_socket)
        self.metrics = Metrics()
        self.state = state or CapacityState(
            CapacityInputs(max_pods=settings.cap, unavailable_enis=settings.unavailable_enis)
        )
        self.state.add_listener(self.metrics.on_capacity)
        self.limits = LimitsResolver(
            settings,
            metadata or MetadataClient(settings.metadata_url, settings.metadata_timeout),
            reader_factory or make_instance_reader(self.metrics.registry),
            on_limits=self._on_limits,
            on_api_error=self.metrics.limits_api_errors.inc,
        )
        self.capfile = (
            CapacityFileWatcher(
                settings.capacity_file,
                self.state,
                default_max_pods=settings.cap,
                default_unavailable_enis=settings.unavailable_enis,
                interval=settings.watch_interval,
            )
            if settings.capacity_file
            else None
        )
        self.eip: EipPlugin | None = None
        if settings.eip:  # the second resource, tke.cloud.tencent.com/eip
            self.eip = EipPlugin(
                settings.device_plugin_dir,
                settings.kubelet_socket,
                settings.eip_socket_name,
                quota=quota_reader(settings, lambda: self.limits.identity, self.metrics.registry),
                node_capacity=lambda: self.state.snapshot().devices.capacity,
                quota_interval=settings.eip_quota_interval,
                watch_interval=settings.watch_interval,
            )
        self.status: StatusServer | None = None
        self.registered = threading.Event()
        self.registration_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: grpc.Server | None = None
        self._servicer: DevicePluginServicer | None = None
        self._own_id: SocketId | None = None

    @property
    def feed(self) -> CapacityFeed:
        """The port a node agent pushes this node's usable IPs into."""
        return self.state

    # --- lifecycle ---
    def start(self) -> None:
        log.info("device plugin starting")
        if self.settings.metrics_bind_address:
            self.status = StatusServer(
                self.settings.metrics_bind_address,
                registries=[self.metrics.registry],
                healthy=self._healthz,
                ready=self._readyz,
                name="device-plugin",
            )
            self.status.start()
        if self.capfile is not None:
            self.capfile.start()
        self.limits.start()
        self._thread = threading.Thread(target=self._run, name="dp-main", daemon=True)
        self._thread.start()
        if self.eip is not None:
            self.eip.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Clean stop: close the stream, stop the server, remove our socket."""
        log.info("device plugin stopping")
        self._stop.set()
        self.state.poke()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop_server()
        if self.eip is not None:
            self.eip.stop(timeout)
        self.limits.stop()
        if self.capfile is not None:
            self.capfile.stop()
        if self.status is not None:
            self.status.stop()
        log.info("device plugin stopped")

    @property
    def alive(self) -> bool:
        """Whether the serve/register/watch loop runs (False after stop or a crash)."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    # --- the loop ---
    def _run(self) -> None:
        backoff = 0.1
        waiting_logged = False
        while not self._stop.is_set():
            kubelet_id = socket_id(self.kubelet_path)
            if kubelet_id is None:
                if not waiting_logged:
                    log.warning("kubelet not running; waiting", extra={"socket": self.kubelet_path})
                    waiting_logged = True
                self._stop.wait(self.settings.watch_interval)
                continue
            waiting_logged = False
            try:
                self._serve()
                register(
                    self.kubelet_path,
                    self.settings.socket_name,
                    self.settings.resource_name,
                    self.settings.register_timeout,
                )
            except (RegistrationError, RuntimeError, OSError) as exc:
                self.metrics.registration_failures.inc()
                log.warning(
                    "registration failed; retrying",
                    extra={"error": str(exc), "retry_in_s": round(backoff, 3)},
                )
                self._stop_server()
                self._wait_kubelet_change(kubelet_id, backoff)
                backoff = min(backoff * 2, self.settings.register_backoff_max)
                continue
            backoff = 0.1
            self._on_registered()
            reason = self._watch(kubelet_id)
            self.registered.clear()
            self.metrics.registered.set(0)
            if reason != "stop":
                log.warning("re-registering", extra={"reason": reason})
            self._stop_server()

    def _serve(self) -> None:
        """A fresh gRPC server on our socket, proven to answer."""
        self._stop_server()
        if remove_stale_socket(self.socket_path):
            log.info("removed stale socket", extra={"socket": self.socket_path})
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.settings.grpc_workers, thread_name_prefix="dp-grpc")
        )
        servicer = DevicePluginServicer(self.state, self.metrics, self.settings.resource_name)
        health_servicer = health.HealthServicer()
        api_pb2_grpc.add_DevicePluginServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        server.add_insecure_port(f"unix://{self.socket_path}")
        server.start()
        self._server, self._servicer = server, servicer
        self._own_id = socket_id(self.socket_path)
        dial_self(self.socket_path, timeout=5.0)
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    def _stop_server(self) -> None:
        server, servicer = self._server, self._servicer
        self._server = self._servicer = None
        stop_serving(server, servicer, self.socket_path, self._own_id)
        self._own_id = None

    def _on_registered(self) -> None:
        self.registration_count += 1
        self.metrics.registrations.inc()
        if self.registration_count > 1:
            self.metrics.reregistrations.inc()
        self.metrics.registered.set(1)
        self.registered.set()
        devices = self.state.snapshot().devices
        log.info(
            "registered with the kubelet",
            extra={
                "resource": self.settings.resource_name,
                "endpoint": self.settings.socket_name,
                "registrations": self.registration_count,
                "devices": devices.describe(),
            },
        )

    def _watch(self, kubelet_id: SocketId) -> str:
        while not self._stop.wait(self.settings.watch_interval):
            if socket_id(self.socket_path) != self._own_id:
                return "plugin socket removed (kubelet restart)"
            now = socket_id(self.kubelet_path)
            if now != kubelet_id:
                return "kubelet.sock removed" if now is None else "kubelet.sock recreated"
        return "stop"

    def _wait_kubelet_change(self, kubelet_id: SocketId, delay: float) -> None:
        """Sleep ``delay`` but wake early on stop or a new kubelet.sock."""
        remaining = delay
        while remaining > 0 and not self._stop.is_set():
            step = min(self.settings.watch_interval, remaining)
            if self._stop.wait(step):
                return
            remaining -= step
            if socket_id(self.kubelet_path) != kubelet_id:
                return

    # --- limits and status ---
    def _on_limits(self, limits: EniLimits) -> None:
        self.metrics.limits_fallback.set(
            1 if limits.source != "api" and self.settings.limits_source == "api" else 0
        )
        self.state.set_limits(limits)

    def _healthz(self) -> tuple[bool, str]:
        return self.alive, "ok" if self.alive else "main loop not running"

    def _readyz(self) -> tuple[bool, str]:
        devices = self.state.snapshot().devices
        if not self.registered.is_set():
            return False, "not registered with the kubelet"
        return True, f"registered; {devices.describe()}"
