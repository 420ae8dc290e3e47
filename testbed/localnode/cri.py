"""A small CRI (runtime.v1) client for tests and clean-up, generated at run time.

The stubs come from the cri-api module's ``api.proto`` in the Go module cache (the
Kubernetes build downloads it); its gogoproto options are stripped and grpc_tools
compiles it into a cache dir. Nothing generated is committed.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

PROTO_ENV = "TKE_CRI_API_PROTO"
CACHE_DIR = Path(os.environ.get("TKE_NODE_CACHE", "/var/cache/tke-vpc-cni/localnode"))
_PROTO_GLOBS = (
    "/root/go/pkg/mod/k8s.io/cri-api@v*/pkg/apis/runtime/v1/api.proto",
    "/var/cache/tke-vpc-cni/k8s/**/pkg/mod/k8s.io/cri-api@v*/pkg/apis/runtime/v1/api.proto",
)


class CriSetupError(RuntimeError):
    """No cri-api proto to generate the client from."""


def find_proto() -> Path:
    explicit = os.environ.get(PROTO_ENV)
    if explicit:
        return Path(explicit)
    found: list[str] = []
    for pattern in _PROTO_GLOBS:
        found += glob.glob(pattern, recursive=True)
    if not found:
        raise CriSetupError(
            "k8s.io/cri-api api.proto not found in the Go module cache "
            f"(looked at {', '.join(_PROTO_GLOBS)}; or set {PROTO_ENV}): "
            "run hack/setup.sh (step: k8s build)")
    return Path(sorted(found)[-1])


def strip_gogo(text: str) -> str:
    """Drop the gogoproto import and options (Go-only code-generation hints)."""
    text = re.sub(r'^import "github.com/gogo/protobuf/gogoproto/gogo.proto";\n', "", text,
                  flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[^;]*;\n", "", text, flags=re.M)
    return re.sub(r"\s*\[\(gogoproto\.[^\]]*\]", "", text)


@dataclass(frozen=True)
class CriModules:
    pb2: ModuleType
    grpc: ModuleType


_loaded: CriModules | None = None


def load() -> CriModules:
    """Generate (once per proto content) and import the runtime.v1 stubs."""
    global _loaded  # noqa: PLW0603 - one generated module set per process
    if _loaded is not None:
        return _loaded
    src = find_proto()
    text = strip_gogo(src.read_text())
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = CACHE_DIR / f"cri-{key}"
    pkg = out / "cri_runtime_v1"
    if not (pkg / "api_pb2_grpc.py").exists():
        from grpc_tools import protoc  # type: ignore[import-untyped]

        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "api.proto").write_text(text)
        include = str(Path(protoc.__file__).parent / "_proto")
        rc = protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(pkg / "api.proto")])
        if rc != 0:
            raise CriSetupError(f"protoc failed ({rc}) on {src} (stripped copy in {pkg})")
        (pkg / "__init__.py").write_text("")
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    _loaded = CriModules(importlib.import_module("cri_runtime_v1.api_pb2"),
                         importlib.import_module("cri_runtime_v1.api_pb2_grpc"))
    return _loaded


class CriClient:
    """The few CRI calls the node needs: sandboxes, containers, listing, clean-up."""

    def __init__(self, socket_path: Path, timeout: float = 60.0) -> None:
        import grpc

        self.m = load()
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.runtime: Any = self.m.grpc.RuntimeServiceStub(self.channel)
        self.images: Any = self.m.grpc.ImageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CriClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pb(self) -> Any:
        return self.m.pb2

    def version(self) -> Any:
        return self.runtime.Version(self.pb.VersionRequest(), timeout=self.timeout)

    def status(self) -> Any:
        return self.runtime.Status(self.pb.StatusRequest(verbose=False), timeout=self.timeout)

    def sandbox_config(self, name: str, namespace: str, uid: str,
                       cgroup_parent: str = "") -> Any:
        pb = self.pb
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0),
            hostname=name, log_directory="",
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent),
        )

    def run_pod_sandbox(self, config: Any) -> str:
        resp = self.runtime.RunPodSandbox(self.pb.RunPodSandboxRequest(config=config),
                                          timeout=self.timeout)
        return str(resp.pod_sandbox_id)

    def pod_sandbox_status(self, sandbox_id: str) -> Any:
        return self.runtime.PodSandboxStatus(
            self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), timeout=self.timeout
        ).status

    def create_container(self, sandbox_id: str, sandbox_config: Any, name: str, image: str,
                         command: list[str]) -> str:
        pb = self.pb
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name, attempt=0),
                                 image=pb.ImageSpec(image=image), command=command)
        resp = self.runtime.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=cfg, sandbox_config=sandbox_config),
            timeout=self.timeout)
        return str(resp.container_id)

    def start_container(self, container_id: str) -> None:
        self.runtime.StartContainer(self.pb.StartContainerRequest(container_id=container_id),
                                    timeout=self.timeout)

    def exec_sync(self, container_id: str, cmd: list[str], timeout: int = 10) -> tuple[int, str]:
        resp = self.runtime.ExecSync(self.pb.ExecSyncRequest(
            container_id=container_id, cmd=cmd, timeout=timeout), timeout=self.timeout)
        return int(resp.exit_code), bytes(resp.stdout + resp.stderr).decode(errors="replace")

    def pull_image(self, ref: str) -> str:
        pb = self.pb
        resp = self.images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)),
                                     timeout=self.timeout)
        return str(resp.image_ref)

    def list_sandboxes(self) -> list[str]:
        resp = self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=self.timeout)
        return [str(s.id) for s in resp.items]

    def stop_and_remove_sandbox(self, sandbox_id: str) -> None:
        pb = self.pb
        self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                                    timeout=self.timeout)
        self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                                      timeout=self.timeout)

    def remove_all(self) -> list[str]:
        """Stop and remove every sandbox (CNI DEL runs for each); return the errors.
        kube-system's sandboxes go last: a CNI's own agent may run there, and every other
        pod's DEL needs it."""
        errors: list[str] = []
        resp = self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=self.timeout)
        ordered = sorted(resp.items, key=lambda s: s.labels.get(
            "io.kubernetes.pod.namespace") == "kube-system")
        for sid in (str(s.id) for s in ordered):
            try:
                self.stop_and_remove_sandbox(sid)
            except Exception as exc:  # noqa: BLE001 - clean-up collects every failure
                errors.append(f"sandbox {sid}: {exc}")
        return errors
