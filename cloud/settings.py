"""Settings of the cloud adapter: a documented dataclass whose ``--cloud-*``
flags and ``TKE_CLOUD_*`` env vars are declared once in ``SPEC`` (the kit's
``kit.settings``: flag > env > default, errors naming the source, the flag and
the env var). ``add_arguments`` puts the flags on a daemon's parser,
``from_args`` reads them back against the environment it is given, ``from_env``
reads the environment alone. Credentials are env-only (``TENCENTCLOUD_*``: a
secret never goes on a command line). The table is in docs/cloud.md ("Settings")."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kit.settings import Flag, Spec, at_least, effective, one_of, positive, text

DEFAULT_METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"
#: the fields redacted in the effective configuration
SECRETS = ("secret_key", "token")
#: the SDK's credential env vars (env-only) -> CloudSettings field
CREDENTIAL_ENV = {
    "secret_id": "TENCENTCLOUD_SECRET_ID",
    "secret_key": "TENCENTCLOUD_SECRET_KEY",
    "token": "TENCENTCLOUD_SESSION_TOKEN",
}


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
    ca_file: str | None = None  # CA bundle for the endpoints; None: the SDK's own (certifi)

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
        return effective(self, SECRETS)

    def with_endpoint(self, endpoint: str, protocol: str = "http") -> CloudSettings:
        """Point both services at one endpoint (the emulator serves VPC and CVM)."""
        return replace(self, vpc_endpoint=endpoint, cvm_endpoint=endpoint, protocol=protocol)


def _security_groups(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]"


def _readable_file(value: Any) -> str | None:
    return None if os.path.isfile(value) and os.access(value, os.R_OK) else "no readable file there"


_D = CloudSettings()
PREFIX = "cloud_"  # a flag's field (its argparse dest) is PREFIX + the CloudSettings field

SPEC = Spec(
    "cloud",
    "The cloud client (VPC and CVM APIs).",
    (
        Flag("cloud_region", "TKE_CLOUD_REGION", _D.region, "region of the API calls",
             flag="--cloud-region"),
        Flag("cloud_vpc_endpoint", "TKE_CLOUD_VPC_ENDPOINT", _D.vpc_endpoint,
             "VPC API host[:port], no scheme", flag="--cloud-vpc-endpoint"),
        Flag("cloud_cvm_endpoint", "TKE_CLOUD_CVM_ENDPOINT", _D.cvm_endpoint,
             "CVM API host[:port], no scheme", flag="--cloud-cvm-endpoint"),
        Flag("cloud_protocol", "TKE_CLOUD_PROTOCOL", _D.protocol,
             "https, or http (the local emulator)", flag="--cloud-protocol",
             parse=one_of("http", "https")),
        Flag("cloud_ca_file", "TKE_CLOUD_CA_FILE", _D.ca_file,
             "PEM CA bundle the endpoints' certificates are checked against (a private "
             "endpoint, the emulator over HTTPS); default: the SDK's own bundle",
             flag="--cloud-ca-file", parse=text, check=_readable_file),
        Flag("cloud_request_timeout_s", "TKE_CLOUD_REQUEST_TIMEOUT", _D.request_timeout_s,
             "seconds per HTTP request", flag="--cloud-request-timeout", check=positive),
        Flag("cloud_credentials_file", "TKE_CLOUD_CREDENTIALS_FILE", _D.credentials_file,
             "profile file of the credential chain (default ~/.tencentcloud/credentials)",
             flag="--cloud-credentials-file", parse=text),
        Flag("cloud_metadata_url", "TKE_CLOUD_METADATA_URL", _D.metadata_url,
             "metadata service (CVM role credentials)", flag="--cloud-metadata-url"),
        Flag("cloud_role", "TKE_CLOUD_ROLE", _D.role,
             "CVM role (default: the first the metadata service lists)", flag="--cloud-role",
             parse=text),
        Flag("cloud_cluster_id", "TKE_CLUSTER_ID", _D.cluster_id,
             "cluster id tagged on the ENIs created", flag="--cluster-id"),
        Flag("cloud_rate_fraction", "TKE_CLOUD_RATE_FRACTION", _D.rate_fraction,
             "client-side limit as a fraction of each action's documented limit",
             flag="--cloud-rate-fraction", check=_fraction),
        Flag("cloud_max_attempts", "TKE_CLOUD_MAX_ATTEMPTS", _D.max_attempts,
             "attempts per call (retryable errors)", flag="--cloud-max-attempts",
             check=at_least(1)),
        Flag("cloud_backoff_base_s", "TKE_CLOUD_BACKOFF_BASE", _D.backoff_base_s,
             "first retry backoff, seconds", flag="--cloud-backoff-base", check=positive),
        Flag("cloud_backoff_max_s", "TKE_CLOUD_BACKOFF_MAX", _D.backoff_max_s,
             "retry backoff cap, seconds", flag="--cloud-backoff-max"),
        Flag("cloud_task_timeout_s", "TKE_CLOUD_TASK_TIMEOUT", _D.task_timeout_s,
             "deadline of a write's async task, seconds", flag="--cloud-task-timeout",
             check=positive),
        Flag("cloud_task_poll_s", "TKE_CLOUD_TASK_POLL", _D.task_poll_s,
             "first task poll, seconds (x1.5 per poll)", flag="--cloud-task-poll",
             check=positive),
        Flag("cloud_security_group_ids", "TKE_CLOUD_SECURITY_GROUPS", _D.security_group_ids,
             "security groups of the ENIs created (comma-separated)",
             flag="--cloud-security-groups", parse=_security_groups),
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--cloud-*`` flags (unset by default: ``from_args`` applies env and defaults)."""
    SPEC.add_arguments(parser)


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> CloudSettings:
    """The settings from a namespace parsed with ``add_arguments``'s flags: flag > env var
    in ``environ`` (default os.environ) > default. A bad value raises ``SettingsError``
    (a ValueError) naming the source, the flag and the env var."""
    env = os.environ if environ is None else environ
    loaded = SPEC.resolve(ns, env)
    values = {name.removeprefix(PREFIX): value for name, value in loaded.values.items()}
    values.update({name: env.get(var) or None for name, var in CREDENTIAL_ENV.items()})
    return CloudSettings(**values)


def from_env(environ: Mapping[str, str] | None = None) -> CloudSettings:
    """The settings from env vars alone (no flags): env > default."""
    return from_args(argparse.Namespace(**{f.field: None for f in SPEC.flags}), environ)
