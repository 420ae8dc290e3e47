"""Settings of the cloud adapter: a documented dataclass, with CLI flags and
env vars (``add_arguments`` / ``from_args`` / ``from_env``) every daemon shares.
The flag / env / default table is in docs/cloud.md ("Settings")."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

DEFAULT_METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"


@dataclass(frozen=True)
class CloudSettings:
    region: str = "ap-guangzhou"
    vpc_endpoint: str = "vpc.tencentcloudapi.com"  # host[:port], no scheme
    cvm_endpoint: str = "cvm.tencentcloudapi.com"
    protocol: str = "https"  # "http" for the local emulator
    request_timeout_s: float = 5.0
    secret_id: str | None = None  # explicit credentials win over the chain
    secret_key: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    credentials_file: str | None = None
    metadata_url: str = DEFAULT_METADATA_URL
    role: str | None = None
    cluster_id: str = ""
    creator: str = "tke-eni-ipamd"
    rate_fraction: float = 0.5  # client-side limit = fraction × documented per-action limit
    rate_overrides: Mapping[str, float] = field(default_factory=dict)
    max_attempts: int = 6
    backoff_base_s: float = 0.1
    backoff_max_s: float = 5.0
    task_timeout_s: float = 60.0
    task_poll_s: float = 0.05
    task_poll_max_s: float = 1.0
    security_group_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.protocol not in ("http", "https"):
            raise ValueError(f"cloud protocol must be http or https, got {self.protocol!r}")
        if not 0 < self.rate_fraction <= 1:
            raise ValueError(f"cloud rate fraction must be in (0, 1], got {self.rate_fraction}")
        if self.max_attempts < 1:
            raise ValueError(f"cloud max attempts must be >= 1, got {self.max_attempts}")
        for name in ("request_timeout_s", "task_timeout_s", "task_poll_s", "backoff_base_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"cloud setting {name} must be positive")

    def redacted(self) -> dict[str, Any]:
        """The effective settings for the start-up log, secrets replaced."""
        data = asdict(self)
        for key in ("secret_key", "token"):
            if data.get(key):
                data[key] = "<redacted>"
        data["rate_overrides"] = dict(self.rate_overrides)
        return data

    def with_endpoint(self, endpoint: str, protocol: str = "http") -> CloudSettings:
        """Point both services at one endpoint (the emulator serves VPC and CVM)."""
        return replace(self, vpc_endpoint=endpoint, cvm_endpoint=endpoint, protocol=protocol)


_FLAGS: tuple[tuple[str, str, str, type], ...] = (
    ("region", "--cloud-region", "TKE_CLOUD_REGION", str),
    ("vpc_endpoint", "--cloud-vpc-endpoint", "TKE_CLOUD_VPC_ENDPOINT", str),
    ("cvm_endpoint", "--cloud-cvm-endpoint", "TKE_CLOUD_CVM_ENDPOINT", str),
    ("protocol", "--cloud-protocol", "TKE_CLOUD_PROTOCOL", str),
    ("request_timeout_s", "--cloud-request-timeout", "TKE_CLOUD_REQUEST_TIMEOUT", float),
    ("credentials_file", "--cloud-credentials-file", "TKE_CLOUD_CREDENTIALS_FILE", str),
    ("metadata_url", "--cloud-metadata-url", "TKE_CLOUD_METADATA_URL", str),
    ("role", "--cloud-role", "TKE_CLOUD_ROLE", str),
    ("cluster_id", "--cluster-id", "TKE_CLUSTER_ID", str),
    ("rate_fraction", "--cloud-rate-fraction", "TKE_CLOUD_RATE_FRACTION", float),
    ("max_attempts", "--cloud-max-attempts", "TKE_CLOUD_MAX_ATTEMPTS", int),
    ("backoff_base_s", "--cloud-backoff-base", "TKE_CLOUD_BACKOFF_BASE", float),
    ("backoff_max_s", "--cloud-backoff-max", "TKE_CLOUD_BACKOFF_MAX", float),
    ("task_timeout_s", "--cloud-task-timeout", "TKE_CLOUD_TASK_TIMEOUT", float),
    ("task_poll_s", "--cloud-task-poll", "TKE_CLOUD_TASK_POLL", float),
    ("security_group_ids", "--cloud-security-groups", "TKE_CLOUD_SECURITY_GROUPS", str),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--cloud-*`` flags; defaults come from the env, then the dataclass."""
    base = CloudSettings()
    for name, flag, env, typ in _FLAGS:
        default = getattr(base, name)
        if name == "security_group_ids":
            default = ",".join(default)
        parser.add_argument(
            flag,
            dest=f"cloud_{name}",
            type=typ,
            default=os.environ.get(env, default),
            help=f"(env {env}; default {default!r})",
        )


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> CloudSettings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, _flag, _env, typ in _FLAGS:
        raw = getattr(ns, f"cloud_{name}", None)
        if raw is None or raw == "":
            continue
        values[name] = _convert(name, typ, raw)
    return CloudSettings(
        secret_id=env.get("TENCENTCLOUD_SECRET_ID") or None,
        secret_key=env.get("TENCENTCLOUD_SECRET_KEY") or None,
        token=env.get("TENCENTCLOUD_SESSION_TOKEN") or None,
        **values,
    )


def from_env(environ: Mapping[str, str] | None = None) -> CloudSettings:
    env = os.environ if environ is None else environ
    ns = argparse.Namespace(**{f"cloud_{n}": env.get(e) for n, _f, e, _t in _FLAGS})
    return from_args(ns, env)


def _convert(name: str, typ: type, raw: object) -> Any:
    if name == "security_group_ids":
        return tuple(s.strip() for s in str(raw).split(",") if s.strip())
    try:
        return typ(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid cloud setting {name}={raw!r}: {exc}") from exc
