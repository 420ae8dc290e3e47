"""Write kubeconfig files."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path, server: str, ca_cert: Path, client_cert: Path,
                     client_key: Path, *, user: str = "admin",
                     cluster: str = "tke-local") -> Path:
    """Write a kubeconfig (absolute certificate paths) for one user of one cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority": str(ca_cert.resolve())}}],
        "users": [{"name": user, "user": {
            "client-certificate": str(client_cert.resolve()),
            "client-key": str(client_key.resolve())}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
