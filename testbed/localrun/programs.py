"""ipamd and the scheduler extender as processes started from their Deployments: the argv
and environment the kubelet would give the container (localrun.manifests), plus what a pod
would get from the cluster (a kubeconfig instead of in-cluster config, loopback ports)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from localnode.proc import Daemon
from localrun.manifests import ManifestError, container_process, containers

VENV_BIN = Path(sys.executable).parent


def program_path(name: str) -> str:
    found = shutil.which(name, path=str(VENV_BIN))
    if found is None:
        raise ManifestError(f"{name} not installed next to {sys.executable}: run hack/setup.sh "
                            "(step: python venv)")
    return found


def downward(pod_name: str, namespace: str = "kube-system") -> dict[str, str]:
    """Downward-API values for one of our processes (it listens on loopback)."""
    return {"spec.nodeName": "localhost", "status.hostIP": "127.0.0.1",
            "status.podIP": "127.0.0.1", "metadata.name": pod_name,
            "metadata.namespace": namespace}


def from_workload(objs: list[dict[str, Any]], workload: Mapping[str, Any], pod_name: str, *,
                  log: Path, extra_argv: Sequence[str] = (),
                  extra_env: Mapping[str, str] | None = None) -> Daemon:
    """A Daemon running the workload's (single) container as its pod would."""
    (container,) = [c for c in containers(workload)]
    argv, env = container_process(objs, workload, container, downward(pod_name))
    cmd = [program_path(container["command"][0]), *argv, *extra_argv]
    return Daemon(f"{workload['metadata']['name']}", cmd, log,
                  env={**os.environ, **env, **(extra_env or {})})
