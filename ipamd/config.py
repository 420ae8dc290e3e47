"""ipamd settings: one documented dataclass; every value has a CLI flag, an
environment variable (``TKE_IPAMD_<FLAG>`` with dashes as underscores) and a
default. Flags accept both ``--flag value`` and ``--flag=value`` (argparse).

Precedence: flag > environment > default. Cloud settings are the shared
``--cloud-*`` flags of ``cloud.settings``; credentials come from the
environment (``TENCENTCLOUD_SECRET_ID`` / ``TENCENTCLOUD_SECRET_KEY``) or the
credential chain and are redacted when the config is logged."""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from cloud.settings import CloudSettings
from cloud.settings import add_arguments as add_cloud_arguments
from cloud.settings import from_args as cloud_from_args
from core.duration import DurationError, format_duration, parse_duration

ENV_PREFIX = "TKE_IPAMD_"
NEVER = "never"
#: a TKE cluster id: "cls-" and 8 lower-case letters or digits (cls-kjqul1ir)
CLUSTER_ID_RE = re.compile(r"^cls-[0-9a-z]{8}$")
#: where deploy/ sets --clusterid (knob 3 of deploy/kustomization.yaml)
CLUSTER_ID_KNOB = "deploy/knobs/ipamd-args.yaml"


@dataclass(frozen=True, slots=True)
class Settings:
    cluster_id: str = ""
    claim_expired_duration: timedelta | None = None  # None: never reclaim (TKE default)
    enable_ownerref: bool = False
    kubeconfig: str = ""  # empty: in-cluster config
    # cloud: the shared ``--cloud-*`` flags of cloud.settings (docs/cloud.md), plus
    # --cloud-endpoint: one host:port for both VPC and CVM (the local emulator)
    cloud: CloudSettings = field(default_factory=CloudSettings)
    cloud_endpoint: str = ""
    # warm pool
    min_prebind: int = 5
    max_prebind: int = 5
    ip_cooldown: timedelta = timedelta(seconds=30)
    trim_interval: timedelta = timedelta(
        minutes=2
    )  # release at most one surplus IP per node per interval
    # leak clean-up (ipamd.leaks)
    leaked_eni_min_age: timedelta = timedelta(minutes=10)
    leaked_eni_dry_run: bool = False
    # loops
    reconcile_interval: timedelta = timedelta(seconds=60)
    subnet_refresh_interval: timedelta = timedelta(seconds=30)
    workers: int = 8
    # leader election
    leader_elect: bool = True
    lease_name: str = "tke-eni-ipamd"
    lease_namespace: str = "kube-system"
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)
    identity: str = ""
    # endpoints
    metrics_address: str = "0.0.0.0:9103"
    health_address: str = "0.0.0.0:9104"
    log_level: str = "INFO"

    def redacted(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, CloudSettings):
                value = value.redacted()
            elif isinstance(value, timedelta):
                value = format_duration(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        if self.claim_expired_duration is None:
            out["claim_expired_duration"] = NEVER
        return out


class ConfigError(ValueError):
    """A flag or environment value that cannot be used; names the flag and value."""


def _duration(text: str, flag: str, *, allow_never: bool = False) -> timedelta | None:
    if allow_never and text.strip().lower() in ("", NEVER):
        return None
    try:
        return parse_duration(text, what=f"--{flag}")
    except DurationError as exc:
        raise ConfigError(str(exc)) from exc


def _bool(text: str, flag: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"invalid --{flag} {text!r}: expected true or false")


def _int(text: str, flag: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise ConfigError(f"invalid --{flag} {text!r}: expected an integer") from exc
    if value < minimum:
        raise ConfigError(f"invalid --{flag} {text!r}: must be >= {minimum}")
    return value


def _float(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"invalid --{flag} {text!r}: expected a number") from exc
    if value <= 0:
        raise ConfigError(f"invalid --{flag} {text!r}: must be > 0")
    return value


# flag name -> (Settings field, help)
_FLAGS: dict[str, tuple[str, str]] = {
    "clusterid": ("cluster_id", "cluster id (cls-...), tagged on every ENI we create"),
    "claim-expired-duration": (
        "claim_expired_duration",
        "how long after a static pod is gone its IP is returned (Go duration; default never)",
    ),
    "enable-ownerref": ("enable_ownerref", "release a claim when the owning workload is deleted"),
    "kubeconfig": ("kubeconfig", "kubeconfig path (default: in-cluster config)"),
    "cloud-endpoint": (
        "cloud_endpoint",
        "one host:port serving both VPC and CVM APIs over --cloud-protocol (the emulator)",
    ),
    "min-prebind": ("min_prebind", "warm IPs kept above the pods of a node (lower bound)"),
    "max-prebind": ("max_prebind", "warm IPs kept above the pods of a node (upper bound)"),
    "ip-cooldown": ("ip_cooldown", "a freed IP is not returned to the cloud before this"),
    "trim-interval": ("trim_interval", "release at most one surplus warm IP per node per interval"),
    "reconcile-interval": ("reconcile_interval", "cloud vs CRD drift check period"),
    "leaked-eni-min-age": (
        "leaked_eni_min_age",
        "delete a leaked ENI of ours only after it has looked leaked this long",
    ),
    "leaked-eni-dry-run": (
        "leaked_eni_dry_run",
        "report leaked ENIs (event, metric) instead of deleting them (true/false)",
    ),
    "subnet-refresh-interval": ("subnet_refresh_interval", "subnet free-IP refresh period"),
    "workers": ("workers", "concurrent work items"),
    "leader-elect": ("leader_elect", "use a coordination.k8s.io Lease (true/false)"),
    "leader-elect-lease-name": ("lease_name", "Lease name"),
    "leader-elect-namespace": ("lease_namespace", "Lease namespace"),
    "leader-elect-lease-duration": ("lease_duration", "Lease duration"),
    "leader-elect-renew-deadline": ("renew_deadline", "give up leadership after failing to renew"),
    "leader-elect-retry-period": ("retry_period", "Lease acquire/renew period"),
    "identity": ("identity", "leader identity (default: hostname_pid)"),
    "metrics-address": ("metrics_address", "host:port of /metrics"),
    "health-address": ("health_address", "host:port of /healthz and /readyz"),
    "log-level": ("log_level", "DEBUG, INFO, WARNING, ERROR"),
}


def env_name(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def _convert(field_name: str, flag: str, text: str) -> Any:  # noqa: PLR0911
    default = getattr(Settings(), field_name)
    if field_name == "claim_expired_duration":
        return _duration(text, flag, allow_never=True)
    if isinstance(default, bool):
        return _bool(text, flag)
    if isinstance(default, int):
        return _int(text, flag, minimum=1 if field_name == "workers" else 0)
    if isinstance(default, float):
        return _float(text, flag)
    if isinstance(default, timedelta):
        return _duration(text, flag)
    if isinstance(default, tuple):
        return tuple(p.strip() for p in text.split(",") if p.strip())
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tke-eni-ipamd",
        description="TKE VPC-CNI ipamd: ENI and IP lifecycle, static IP claims, subnets.",
    )
    for flag, (field_name, help_text) in _FLAGS.items():
        is_bool = isinstance(getattr(Settings(), field_name), bool)
        parser.add_argument(
            f"--{flag}",
            dest=flag.replace("-", "_"),
            metavar="VALUE",
            nargs="?" if is_bool else None,
            const="true" if is_bool else None,
            help=f"{help_text} [env {env_name(flag)}]",
        )
    add_cloud_arguments(parser)
    return parser


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then env, then defaults. Raises ConfigError."""
    env = os.environ if env is None else env
    ns = build_parser().parse_args(list(argv) if argv is not None else None)
    values: dict[str, Any] = {}
    for flag, (field_name, _) in _FLAGS.items():
        raw = getattr(ns, flag.replace("-", "_"))
        if raw is None:
            raw = env.get(env_name(flag))
        if raw is None:
            continue
        values[field_name] = _convert(field_name, flag, raw)
    try:
        cloud = cloud_from_args(ns, env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    cluster_id = values.get("cluster_id") or cloud.cluster_id
    if not cluster_id:
        raise ConfigError("--clusterid is required (the id tagged on every ENI ipamd creates)")
    values["cluster_id"] = check_cluster_id(cluster_id)
    cloud = replace(cloud, cluster_id=cluster_id, creator="tke-eni-ipamd")
    endpoint = values.get("cloud_endpoint")
    if endpoint:
        cloud = cloud.with_endpoint(endpoint, cloud.protocol)
    settings = Settings(cloud=cloud, **values)
    return validate(settings)


def check_cluster_id(value: str) -> str:
    """The cluster id, or ConfigError naming the flag and deploy/'s knob. The id
    is how ipamd tells its ENIs from any other cluster's: a placeholder shared
    by two installs makes each delete the other's ENIs."""
    v = value.strip()
    fix = (
        "set --clusterid to this cluster's id as the TKE console shows it "
        f"(cls- and 8 lower-case letters or digits) in {CLUSTER_ID_KNOB} (knob 3 of "
        "deploy/kustomization.yaml), or after install with "
        "`kubectl -n kube-system edit deployments.v1.apps tke-eni-ipamd`"
    )
    if not CLUSTER_ID_RE.match(v):
        raise ConfigError(f"invalid --clusterid {v!r}: not a TKE cluster id; {fix}")
    if len(set(v[len("cls-") :])) == 1:
        raise ConfigError(
            f"--clusterid {v!r} is a placeholder, not a cluster id: two clusters installed "
            f"with it would delete each other's ENIs; {fix}"
        )
    return v


def validate(s: Settings) -> Settings:
    if s.min_prebind > s.max_prebind:
        raise ConfigError(
            f"--min-prebind {s.min_prebind} must not exceed --max-prebind {s.max_prebind}"
        )
    if s.renew_deadline >= s.lease_duration:
        raise ConfigError(
            "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration"
        )
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"invalid --log-level {s.log_level!r}")
    if not s.identity:
        s = replace(s, identity=f"{socket.gethostname()}_{os.getpid()}")
    return s
