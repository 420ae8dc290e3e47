"""Settings of the device plugin: every value a CLI flag, an env var and a
default (flag > env > default). ``OPTIONS`` is the one table the parser,
``--help`` and docs/device-plugin.md are made from.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.names import RESOURCE_ENI_IP

ENV_PREFIX = "TKE_ENI_DP_"
DEFAULT_METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"


class SettingsError(ValueError):
    """A flag or env var has a value we cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    device_plugin_dir: str = DEFAULT_DEVICE_PLUGIN_DIR
    kubelet_socket: str = "kubelet.sock"
    socket_name: str = "tke-eni-ip.sock"
    resource_name: str = RESOURCE_ENI_IP
    metadata_url: str = DEFAULT_METADATA_URL
    metadata_timeout: float = 2.0
    instance_id: str = ""
    instance_type: str = ""
    zone: str = ""
    region: str = ""
    cloud_endpoint: str = ""
    limits_source: str = "api"
    max_pods: int = 0
    unavailable_enis: int = 0
    capacity_file: str = ""
    limits_retry_interval: float = 30.0
    limits_retry_max: float = 300.0
    watch_interval: float = 0.1
    register_timeout: float = 10.0
    register_backoff_max: float = 5.0
    grpc_workers: int = 16
    metrics_bind_address: str = ":9961"
    log_level: str = "info"
    log_format: str = "json"

    @property
    def socket_path(self) -> str:
        return os.path.join(self.device_plugin_dir, self.socket_name)

    @property
    def kubelet_socket_path(self) -> str:
        return os.path.join(self.device_plugin_dir, self.kubelet_socket)

    @property
    def cap(self) -> int | None:
        return self.max_pods or None

    def redacted(self) -> dict[str, object]:
        """The effective configuration for the start-up log (no secrets here;
        cloud credentials come from the SDK's own sources and are never read)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Option:
    field: str
    help: str
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.field.upper()


OPTIONS: tuple[Option, ...] = (
    Option("device_plugin_dir", "kubelet device-plugin directory (kubelet.sock and our socket)"),
    Option("kubelet_socket", "file name of the kubelet's registration socket in that directory"),
    Option("socket_name", "file name of this plugin's socket in that directory"),
    Option("resource_name", "extended resource advertised to the kubelet"),
    Option("metadata_url", "base URL of the instance metadata service"),
    Option("metadata_timeout", "seconds per metadata request"),
    Option("instance_id", "instance id override (else from the metadata service)"),
    Option("instance_type", "instance type override, e.g. S5.LARGE8 (else from metadata)"),
    Option("zone", "zone override (else from the metadata service)"),
    Option("region", "cloud API region (else placement/region from metadata)"),
    Option(
        "cloud_endpoint",
        "VPC/CVM API endpoint host[:port]; an http:// prefix means plain HTTP (the emulator); "
        "default: the cloud layer's (TKE_CLOUD_VPC_ENDPOINT, else vpc.tencentcloudapi.com)",
    ),
    Option(
        "limits_source",
        "api: DescribeNetworkInterfaceLimit, falling back to the built-in table while "
        "the API is unreachable; table: the built-in table only (no cloud calls)",
        ("api", "table"),
    ),
    Option("max_pods", "operator cap on advertised capacity (0 = no cap)"),
    Option("unavailable_enis", "secondary ENIs not usable by pods (lowers Healthy devices)"),
    Option(
        "capacity_file",
        "optional file of key=value lines (max_pods, unavailable_enis, usable_ips), "
        "re-read when it changes",
    ),
    Option("limits_retry_interval", "first retry delay (s) of the limits API after a failure"),
    Option("limits_retry_max", "longest retry delay (s) of the limits API"),
    Option("watch_interval", "seconds between checks for a kubelet restart"),
    Option("register_timeout", "seconds allowed for one Register call"),
    Option("register_backoff_max", "longest wait (s) between failed registrations"),
    Option("grpc_workers", "gRPC server worker threads"),
    Option("metrics_bind_address", "host:port for /metrics, /healthz, /readyz ('' = off)"),
    Option("log_level", "debug, info, warning or error", ("debug", "info", "warning", "error")),
    Option("log_format", "json or text", ("json", "text")),
)

_FIELD_TYPES: dict[str, Callable[[str], Any]] = {
    f.name: {"int": int, "float": float}.get(str(f.type), str) for f in dataclasses.fields(Settings)
}


def build_parser(prog: str = "tke-eni-device-plugin") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Kubelet device plugin advertising this node's ENI IPs "
        f"({RESOURCE_ENI_IP}). Every flag also reads the env var shown.",
    )
    defaults = Settings()
    for opt in OPTIONS:
        parser.add_argument(
            opt.flag,
            dest=opt.field,
            default=None,
            metavar=opt.field.upper(),
            help=f"{opt.help} [env {opt.env}; default {getattr(defaults, opt.field)!r}]",
        )
    return parser


def _convert(opt: Option, raw: str, source: str) -> Any:
    conv = _FIELD_TYPES[opt.field]
    try:
        value = conv(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{source}: invalid value {raw!r}: {exc}") from exc
    if opt.choices and value not in opt.choices:
        raise SettingsError(f"{source}: {raw!r} is not one of {', '.join(opt.choices)}")
    if isinstance(value, int | float) and value < 0:
        raise SettingsError(f"{source}: must be >= 0, got {raw!r}")
    return value


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags, then env vars, then defaults. Raises SettingsError naming the source."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        flag_value = getattr(args, opt.field)
        if flag_value is not None:
            values[opt.field] = _convert(opt, flag_value, opt.flag)
        elif env.get(opt.env, "") != "":
            values[opt.field] = _convert(opt, env[opt.env], opt.env)
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if "/" in settings.socket_name or "/" in settings.kubelet_socket:
        raise SettingsError("--socket-name / --kubelet-socket are file names, not paths")
    if settings.socket_name == settings.kubelet_socket:
        raise SettingsError(f"--socket-name must differ from {settings.kubelet_socket!r}")
    domain, slash, name = settings.resource_name.partition("/")
    if not slash or not domain or not name or "." not in domain:
        raise SettingsError(
            f"--resource-name {settings.resource_name!r} is not an extended resource "
            "name (domain/name, e.g. tke.cloud.tencent.com/eni-ip)"
        )
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise SettingsError(
            f"--resource-name {settings.resource_name!r}: kubernetes.io is reserved"
        )
    if settings.watch_interval <= 0:
        raise SettingsError("--watch-interval must be > 0")
    if settings.grpc_workers < 2:
        raise SettingsError("--grpc-workers must be >= 2 (ListAndWatch holds one)")
