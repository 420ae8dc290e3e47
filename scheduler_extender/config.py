"""Settings: every value has a CLI flag, an environment variable and a
default (flag > env > default). Documented in docs/scheduler-extender.md."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.models import SUBNET_STATUS_CONFIGMAP, SUBNET_STATUS_KEY
from core.names import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    filter_path: str = "/filter"
    prioritize_path: str = "/prioritize"
    kubeconfig: str = ""  # empty: in-cluster service account
    configmap_namespace: str = CONFIGMAP_NAMESPACE
    configmap_name: str = CONFIGMAP_NAME
    status_configmap_name: str = SUBNET_STATUS_CONFIGMAP
    status_key: str = SUBNET_STATUS_KEY
    max_body_bytes: int = 128 * 1024 * 1024
    json_codec: str = "auto"
    threads: int = 4
    stale_after: float = 30.0
    watch_timeout: int = 300
    list_page_size: int = 500
    log_level: str = "info"
    log_format: str = "json"

    def effective(self) -> dict[str, Any]:
        """For the start-up log (nothing secret in here: the kubeconfig is a path)."""
        return asdict(self)


_HELP = {
    "host": "address to listen on",
    "port": "port to listen on",
    "filter_path": "HTTP path of the filter verb (urlPrefix + '/' + filterVerb)",
    "prioritize_path": "HTTP path of the prioritize verb",
    "kubeconfig": "kubeconfig file; empty = in-cluster service account",
    "configmap_namespace": "namespace of the ipamd ConfigMaps",
    "configmap_name": "ConfigMap with TKE_ENI_IPAMD_SUBNET_ID / TKE_ENI_IPAMD_VPC_ID",
    "status_configmap_name": "ConfigMap where ipamd publishes subnet status",
    "status_key": "key of the subnet status JSON in that ConfigMap",
    "max_body_bytes": "larger request bodies are refused with HTTP 400",
    "json_codec": "auto (msgspec when installed), msgspec or stdlib",
    "threads": "waitress worker threads",
    "stale_after": "seconds a watch may be down before its cache counts as stale",
    "watch_timeout": "seconds per watch request before it is renewed",
    "list_page_size": "objects per list page (limit/continue)",
    "log_level": "debug, info, warning or error",
    "log_format": "json or text",
}


def env_name(field: str) -> str:
    if field == "kubeconfig":
        return "KUBECONFIG"
    return "TKE_EXTENDER_" + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="tke-eni-scheduler-extender",
        description="kube-scheduler extender for TKE VPC-CNI (tke-eni-ip-scheduler)",
    )
    defaults = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        kind = type(default)
        raw = env.get(env_name(f.name))
        if raw is not None and raw != "":
            try:
                default = kind(raw)
            except ValueError:
                parser.error(f"{env_name(f.name)}={raw!r}: expected {kind.__name__}")
        parser.add_argument(
            flag_name(f.name),
            dest=f.name,
            type=kind,
            default=default,
            help=f"{_HELP[f.name]} (env {env_name(f.name)}, default {getattr(defaults, f.name)!r})",
        )
    ns = parser.parse_args(argv)
    values = vars(ns)
    if values["log_format"] not in ("json", "text"):
        parser.error("--log-format: json or text")
    if values["json_codec"] not in ("auto", "msgspec", "stdlib"):
        parser.error("--json-codec: auto, msgspec or stdlib")
    for path in ("filter_path", "prioritize_path"):
        if not values[path].startswith("/"):
            values[path] = "/" + values[path]
    if values["max_body_bytes"] <= 0 or values["threads"] <= 0:
        parser.error("--max-body-bytes and --threads must be positive")
    return Settings(**values)
