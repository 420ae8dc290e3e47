"""Talking to the kubelet: Register on kubelet.sock, proving our own socket
serves before that, and recognising a socket file by its inode."""

from __future__ import annotations

import os
import stat
from typing import Protocol

import grpc

from device_plugin.servicer import plugin_options
from protos.v1beta1 import api_pb2, api_pb2_grpc

API_VERSION = "v1beta1"


class RegistrationError(Exception):
    """Register failed; the message names the socket and the gRPC status."""


class Closable(Protocol):
    def close(self) -> None: ...


def socket_id(path: str) -> tuple[int, int, int] | None:
    """(device, inode, ctime_ns) of a unix socket file, None if absent or not a socket."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def remove_stale_socket(path: str) -> bool:
    """Remove whatever is at ``path`` (a stale socket from a previous run)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def stop_serving(
    server: grpc.Server | None,
    servicer: Closable | None,
    socket_path: str,
    own_id: tuple[int, int, int] | None,
) -> None:
    """End one serve cycle: close the servicer's streams, stop the server, and
    remove ``socket_path`` only while it is still the socket we made (``own_id``)."""
    if servicer is not None:
        servicer.close()
    if server is not None:
        server.stop(grace=0.5).wait(5)
    if own_id is not None and socket_id(socket_path) == own_id:
        remove_stale_socket(socket_path)


def dial_self(socket_path: str, timeout: float) -> None:
    """Prove our server answers on its socket (as the kubelet will dial it)."""
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        try:
            # wait_for_ready = a blocking dial; no connectivity subscription,
            # whose polling thread would make close() take ~200 ms
            api_pb2_grpc.DevicePluginStub(channel).GetDevicePluginOptions(  # type: ignore[no-untyped-call]
                api_pb2.Empty(), timeout=timeout, wait_for_ready=True
            )
        except grpc.RpcError as exc:
            raise RegistrationError(f"our own socket {socket_path} does not serve: {exc}") from exc


def register(kubelet_socket_path: str, endpoint: str, resource_name: str, timeout: float) -> None:
    """Call ``/v1beta1.Registration/Register``; the kubelet dials us back inside it."""
    request = api_pb2.RegisterRequest(
        version=API_VERSION,
        endpoint=endpoint,
        resource_name=resource_name,
        options=plugin_options(),
    )
    with grpc.insecure_channel(f"unix://{kubelet_socket_path}") as channel:
        try:
            api_pb2_grpc.RegistrationStub(channel).Register(  # type: ignore[no-untyped-call]
                request, timeout=timeout, wait_for_ready=False
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise RegistrationError(
                f"Register {resource_name} (endpoint {endpoint}) on {kubelet_socket_path} "
                f"failed: {code.name if code else 'error'}: {details}"
            ) from exc
