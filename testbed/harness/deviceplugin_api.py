"""The kubelet's side of the device-plugin API (``deviceplugin/v1beta1``), from the
kubelet's own ``api.proto`` (k8s.io/kubelet in the Go module cache, which the Kubernetes
build downloads), never from the product's copy: the stand-in speaks what a kubelet
speaks, so a drift of the product's proto from the kubelet's shows up on the wire.

The messages are generated (once per proto content) under a package of their own, so
they load beside the product's stubs in one process (one protobuf descriptor pool); the
gRPC method paths are the kubelet's (``/v1beta1.Registration/Register``, ...) and are
spelled here, since the wire carries only them and the serialized messages."""

from __future__ import annotations

import glob
import hashlib
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc

from localnode.cri import strip_gogo

PROTO_ENV = "TKE_DEVICEPLUGIN_API_PROTO"
CACHE_DIR = Path(os.environ.get("TKE_NODE_CACHE", "/var/cache/tke-vpc-cni/localnode"))
_PROTO_GLOBS = (
    "/root/go/pkg/mod/k8s.io/kubelet@v*/pkg/apis/deviceplugin/v1beta1/api.proto",
    "/var/cache/tke-vpc-cni/k8s/**/pkg/mod/k8s.io/kubelet@v*/pkg/apis/deviceplugin/v1beta1/api.proto",
)
#: the package the messages are generated under (the wire never carries it)
LOCAL_PACKAGE = "tke_testbed_kubelet_v1beta1"
#: the services' names on the wire
REGISTRATION = "v1beta1.Registration"
DEVICE_PLUGIN = "v1beta1.DevicePlugin"


class DevicePluginApiSetupError(RuntimeError):
    """No kubelet device-plugin proto to generate the messages from."""


def find_proto() -> Path:
    explicit = os.environ.get(PROTO_ENV)
    if explicit:
        return Path(explicit)
    found: list[str] = []
    for pattern in _PROTO_GLOBS:
        found += glob.glob(pattern, recursive=True)
    if not found:
        raise DevicePluginApiSetupError(
            "k8s.io/kubelet deviceplugin/v1beta1/api.proto not found in the Go module cache "
            f"(looked at {', '.join(_PROTO_GLOBS)}; or set {PROTO_ENV}): "
            "run hack/setup.sh (step: k8s build)"
        )
    return Path(sorted(found)[-1])


_loaded: ModuleType | None = None


def messages() -> ModuleType:
    """The generated message classes (``api_pb2`` of the kubelet's proto)."""
    global _loaded  # noqa: PLW0603 - one generated module per process
    if _loaded is not None:
        return _loaded
    src = find_proto()
    text = strip_gogo(src.read_text())
    text, n = re.subn(r"^package v1beta1;", f"package {LOCAL_PACKAGE};", text, flags=re.M)
    if n != 1:
        raise DevicePluginApiSetupError(f"{src}: no 'package v1beta1;' line")
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = CACHE_DIR / f"deviceplugin-{key}"
    pkg = out / LOCAL_PACKAGE
    if not (pkg / "api_pb2.py").exists():
        from grpc_tools import protoc  # type: ignore[import-untyped]

        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "api.proto").write_text(text)
        include = str(Path(protoc.__file__).parent / "_proto")
        rc = protoc.main(
            ["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", str(pkg / "api.proto")]
        )
        if rc != 0:
            raise DevicePluginApiSetupError(f"protoc failed ({rc}) on {src} (copy in {pkg})")
        (pkg / "__init__.py").write_text("")
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    _loaded = importlib.import_module(f"{LOCAL_PACKAGE}.api_pb2")
    return _loaded


class DevicePluginClient:
    """The calls the kubelet makes to a plugin's socket."""

    def __init__(self, channel: grpc.Channel) -> None:
        pb = messages()

        def unary(method: str, request: Any, reply: Any) -> Callable[..., Any]:
            return channel.unary_unary(
                f"/{DEVICE_PLUGIN}/{method}",
                request_serializer=request.SerializeToString,
                response_deserializer=reply.FromString,
            )

        self.GetDevicePluginOptions = unary(
            "GetDevicePluginOptions", pb.Empty, pb.DevicePluginOptions
        )
        self.GetPreferredAllocation = unary(
            "GetPreferredAllocation", pb.PreferredAllocationRequest, pb.PreferredAllocationResponse
        )
        self.Allocate = unary("Allocate", pb.AllocateRequest, pb.AllocateResponse)
        self.PreStartContainer = unary(
            "PreStartContainer", pb.PreStartContainerRequest, pb.PreStartContainerResponse
        )
        self.ListAndWatch = channel.unary_stream(
            f"/{DEVICE_PLUGIN}/ListAndWatch",
            request_serializer=pb.Empty.SerializeToString,
            response_deserializer=pb.ListAndWatchResponse.FromString,
        )


def registration_handler(
    register: Callable[[Any, grpc.ServicerContext], Any],
) -> grpc.GenericRpcHandler[Any, Any]:
    """The kubelet's ``Registration`` service, answering with ``register``."""
    pb = messages()
    return grpc.method_handlers_generic_handler(
        REGISTRATION,
        {
            "Register": grpc.unary_unary_rpc_method_handler(
                register,
                request_deserializer=pb.RegisterRequest.FromString,
                response_serializer=pb.Empty.SerializeToString,
            )
        },
    )
