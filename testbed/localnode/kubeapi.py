"""A tiny Kubernetes API client for the node helpers and tests (TLS with the admin
kubeconfig's client certificate; no dependency on the kubernetes package)."""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml


class ApiError(RuntimeError):
    """The apiserver refused a request; the message has the method, path and reply."""


def kubeconfig_ca(kubeconfig: Path) -> Path | None:
    with contextlib.suppress(OSError, KeyError, IndexError, TypeError, yaml.YAMLError):
        cfg = yaml.safe_load(kubeconfig.read_text())
        return Path(cfg["clusters"][0]["cluster"]["certificate-authority"])
    return None


def api_request(kubeconfig: Path, server: str, path: str, method: str = "GET",
                body: Mapping[str, Any] | None = None, *,
                content_type: str = "application/json") -> dict[str, Any] | None:
    """A tiny client for tests: TLS with the kubeconfig's client cert; None on 404."""
    cfg = yaml.safe_load(kubeconfig.read_text())
    user = cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])
    ctx.load_cert_chain(user["client-certificate"], user["client-key"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method,  # noqa: S310
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise ApiError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
