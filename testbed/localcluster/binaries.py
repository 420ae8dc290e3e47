"""Locate the cached Kubernetes binaries built by ``hack/k8s/build.sh``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Pins; must equal hack/k8s/versions.env (a test checks it).
K8S_VERSION = "v1.33.13"
ETCD_VERSION = "v3.5.21"
KWOK_VERSION = "v0.7.0"
CNITOOL_VERSION = "v1.3.0"

SETUP_STEP = "hack/setup.sh (step: k8s build)"
DEFAULT_CACHE = "/var/cache/tke-vpc-cni/k8s"
CACHE_ENV = "TKE_K8S_CACHE"
BINARY_NAMES = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager", "kubelet",
                "kubectl", "kwok", "cnitool")


class BinariesMissingError(RuntimeError):
    """The cached binaries are absent or built for other pins."""


@dataclass(frozen=True)
class K8sBinaries:
    """Absolute paths of the programs a local cluster runs."""

    bin_dir: Path
    etcd: Path
    kube_apiserver: Path
    kube_scheduler: Path
    kube_controller_manager: Path
    kubelet: Path
    kubectl: Path
    kwok: Path
    cnitool: Path


def cache_root() -> Path:
    """The cache root: ``$TKE_K8S_CACHE`` or ``/var/cache/tke-vpc-cni/k8s``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def bin_dir(version: str = K8S_VERSION) -> Path:
    return cache_root() / version / "bin"


def _read_manifest(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pins[key.strip()] = value.strip()
    return pins


def k8s_binaries(version: str = K8S_VERSION) -> K8sBinaries:
    """Return the cached binaries, or raise naming the set-up step that builds them.

    The check is cheap (no process is run): every binary must exist and be
    executable, and the manifest ``bin/VERSIONS`` written by the build must
    carry our pins (``build.sh`` verified each binary's ``--version`` then).
    """
    directory = bin_dir(version)
    missing = [n for n in BINARY_NAMES if not os.access(directory / n, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            f"Kubernetes binaries {', '.join(missing)} not found in {directory}: "
            f"run {SETUP_STEP} (set {CACHE_ENV} if the cache lives elsewhere)"
        )
    manifest = directory / "VERSIONS"
    want = {
        "K8S_VERSION": version,
        "ETCD_VERSION": ETCD_VERSION,
        "KWOK_VERSION": KWOK_VERSION,
        "CNITOOL_VERSION": CNITOOL_VERSION,
    }
    try:
        got = _read_manifest(manifest)
    except OSError as exc:
        raise BinariesMissingError(
            f"cannot read {manifest} ({exc}): run {SETUP_STEP}"
        ) from exc
    stale = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    if stale:
        detail = ", ".join(f"{k}={have} (want {need})" for k, (have, need) in stale.items())
        raise BinariesMissingError(f"cached binaries in {directory} are stale: {detail}: "
                                   f"run {SETUP_STEP}")
    return K8sBinaries(
        bin_dir=directory,
        etcd=directory / "etcd",
        kube_apiserver=directory / "kube-apiserver",
        kube_scheduler=directory / "kube-scheduler",
        kube_controller_manager=directory / "kube-controller-manager",
        kubelet=directory / "kubelet",
        kubectl=directory / "kubectl",
        kwok=directory / "kwok",
        cnitool=directory / "cnitool",
    )
