"""Settings of the device plugin: every value a CLI flag, an env var and a
default (flag > env > default, ``kit.settings``). ``OPTIONS`` is the one table
the parser, ``--help`` and docs/device-plugin.md are made from.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.names import RESOURCE_ENI_IP
from kit import logs
from kit.settings import Flag, Parse, SettingsError, Spec, at_least, effective, one_of

ENV_PREFIX = "TKE_ENI_DP_"
DEFAULT_METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"


__all__ = ["OPTIONS", "SPEC", "Settings", "SettingsError", "build_parser", "load", "validate"]


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
    # the second resource, tke.cloud.tencent.com/eip (device_plugin.eipplugin)
    eip: bool = False
    eip_socket_name: str = "tke-eip.sock"
    eip_quota_interval: float = 60.0
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
        return effective(self)


def _option(field: str, help: str, parse: Parse | None = None) -> Flag:
    default = getattr(Settings(), field)
    check = at_least(0) if isinstance(default, int | float) else None
    return Flag(field, ENV_PREFIX + field.upper(), default, help, parse=parse, check=check)


OPTIONS: tuple[Flag, ...] = (
    _option("device_plugin_dir", "kubelet device-plugin directory (kubelet.sock and our socket)"),
    _option("kubelet_socket", "file name of the kubelet's registration socket in that directory"),
    _option("socket_name", "file name of this plugin's socket in that directory"),
    _option("resource_name", "extended resource advertised to the kubelet"),
    _option("metadata_url", "base URL of the instance metadata service"),
    _option("metadata_timeout", "seconds per metadata request"),
    _option("instance_id", "instance id override (else from the metadata service)"),
    _option("instance_type", "instance type override, e.g. S5.LARGE8 (else from metadata)"),
    _option("zone", "zone override (else from the metadata service)"),
    _option("region", "cloud API region (else placement/region from metadata)"),
    _option(
        "cloud_endpoint",
        "VPC/CVM API endpoint host[:port]; an http:// prefix means plain HTTP (the emulator); "
        "default: the cloud layer's (TKE_CLOUD_VPC_ENDPOINT, else vpc.tencentcloudapi.com)",
    ),
    _option(
        "limits_source",
        "api: DescribeNetworkInterfaceLimit, falling back to the built-in table while "
        "the API is unreachable; table: the built-in table only (no cloud calls)",
        one_of("api", "table"),
    ),
    _option("max_pods", "operator cap on advertised capacity (0 = no cap)"),
    _option("unavailable_enis", "secondary ENIs not usable by pods (lowers Healthy devices)"),
    _option(
        "capacity_file",
        "optional file of key=value lines (max_pods, unavailable_enis, usable_ips, and the "
        "node agent's IP tally), re-read when it changes",
    ),
    _option("limits_retry_interval", "first retry delay (s) of the limits API after a failure"),
    _option("limits_retry_max", "longest retry delay (s) of the limits API"),
    _option("watch_interval", "seconds between checks for a kubelet restart"),
    _option("register_timeout", "seconds allowed for one Register call"),
    _option("register_backoff_max", "longest wait (s) between failed registrations"),
    _option("grpc_workers", "gRPC server worker threads"),
    _option("metrics_bind_address", "host:port for /metrics, /healthz, /readyz ('' = off)"),
    _option("eip", "also advertise tke.cloud.tencent.com/eip from the EIP quota (true/false)"),
    _option("eip_socket_name", "file name of the eip resource's socket (with --eip)"),
    _option("eip_quota_interval", "seconds between DescribeAddressQuota reads (with --eip)"),
    *logs.flags(ENV_PREFIX),
)

SPEC = Spec(
    "tke-eni-device-plugin",
    f"Kubelet device plugin advertising this node's ENI IPs ({RESOURCE_ENI_IP}).",
    OPTIONS,
)


def build_parser() -> argparse.ArgumentParser:
    return SPEC.parser()


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags, then env vars, then defaults. Raises SettingsError naming the source."""
    settings = Settings(**SPEC.load(argv, environ).values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if "/" in settings.socket_name or "/" in settings.kubelet_socket:
        raise SettingsError("--socket-name / --kubelet-socket are file names, not paths")
    if settings.eip and (
        "/" in settings.eip_socket_name
        or settings.eip_socket_name in (settings.socket_name, settings.kubelet_socket)
    ):
        raise SettingsError("--eip-socket-name must be a file name of its own")
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
