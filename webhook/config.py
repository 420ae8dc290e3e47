"""Settings of the server: every value has a CLI flag, an environment variable
(``TKE_WEBHOOK_*``) and a default (flag > env > default); the effective
settings are logged at start. Documented in docs/webhook.md. The ``certs``
subcommand's settings are in ``webhook.provision_config``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

ENV_PREFIX = "TKE_WEBHOOK_"


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8443
    health_port: int = 8080
    tls_cert_file: str = ""
    tls_key_file: str = ""
    insecure_http: bool = False
    read_timeout: float = 10.0
    idle_timeout: float = 120.0
    mutate_path: str = "/mutate"
    eni_only: bool = False
    max_body_bytes: int = 8 * 1024 * 1024
    threads: int = 4
    log_level: str = "info"
    log_format: str = "json"

    def effective(self) -> dict[str, Any]:
        """For the start-up log (nothing secret: the key is a path)."""
        return asdict(self)


_HELP = {
    "host": "address to listen on",
    "port": "HTTPS port of the admission endpoint (the API server calls it)",
    "health_port": "plain-HTTP port with only /healthz, /readyz and /metrics "
    "(probes, Prometheus); negative: none",
    "tls_cert_file": "serving certificate (PEM, may carry the chain; reloaded when it changes)",
    "tls_key_file": "private key of the serving certificate (PEM)",
    "insecure_http": "serve plain HTTP (benchmarks and local debugging only: the API "
    "server calls webhooks over HTTPS only)",
    "read_timeout": "seconds for a TLS handshake, for a connection's first bytes and for "
    "each read of a request",
    "idle_timeout": "seconds a kept-alive connection may stay idle between requests before "
    "the server closes it; keep it above the API server's own idle timeout (client-go: "
    "90 s), so the API server closes idle connections first and never sends a call on "
    "one being closed",
    "mutate_path": "HTTP path of the admission endpoint (clientConfig.service.path)",
    "eni_only": "the cluster runs VPC-CNI only (the guide's Method 1): every pod that is "
    "not hostNetwork takes an ENI IP; must match the node agent's --eni-only. "
    "Off: only pods annotated tke.cloud.tencent.com/networks: tke-route-eni",
    "max_body_bytes": "larger request bodies are refused with HTTP 413",
    "threads": "worker threads of the admission server",
    "log_level": "debug, info, warning or error",
    "log_format": "json or text",
}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(raw)


def _flag_bool(raw: str) -> bool:
    try:
        return parse_bool(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a boolean: {raw!r} (true or false)") from None


def add_fields(parser: argparse.ArgumentParser, cls: type, helps: Mapping[str, str],
               env: Mapping[str, str], env_of: Any) -> None:
    """One flag per dataclass field; the env var (if set) replaces the default."""
    defaults = cls()
    for f in fields(cls):
        default = getattr(defaults, f.name)
        kind = type(default)
        raw = env.get(env_of(f.name))
        if raw is not None and raw != "":
            try:
                default = parse_bool(raw) if kind is bool else kind(raw)
            except ValueError:
                parser.error(f"{env_of(f.name)}={raw!r}: expected {kind.__name__}")
        text = f"{helps[f.name]} (env {env_of(f.name)}, default {getattr(defaults, f.name)!r})"
        if kind is bool:  # --flag, --flag=true|false, --no-flag
            parser.add_argument(flag_name(f.name), dest=f.name, default=default, help=text,
                                type=_flag_bool, nargs="?", const=True)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name,
                                action="store_false", help=argparse.SUPPRESS)
        else:
            parser.add_argument(flag_name(f.name), dest=f.name, type=kind, default=default,
                                help=text)


def _check(parser: argparse.ArgumentParser, values: dict[str, Any]) -> None:
    if values["log_format"] not in ("json", "text"):
        parser.error("--log-format: json or text")
    if values["log_level"].lower() not in ("debug", "info", "warning", "error"):
        parser.error("--log-level: debug, info, warning or error")
    if values["read_timeout"] <= 0 or values["idle_timeout"] <= 0:
        parser.error("--read-timeout and --idle-timeout must be positive")
    if values["max_body_bytes"] <= 0 or values["threads"] <= 0:
        parser.error("--max-body-bytes and --threads must be positive")
    if not values["mutate_path"].startswith("/"):
        values["mutate_path"] = "/" + values["mutate_path"]
    if values["port"] != 0 and values["health_port"] == values["port"]:
        parser.error("--health-port must differ from --port")
    tls_set = [flag_name(k) for k in ("tls_cert_file", "tls_key_file") if values[k]]
    if values["insecure_http"]:
        if tls_set:
            parser.error(f"--insecure-http and {', '.join(tls_set)} together: choose one")
    elif len(tls_set) != 2:
        parser.error(
            "--tls-cert-file and --tls-key-file (or TKE_WEBHOOK_TLS_CERT_FILE / "
            "TKE_WEBHOOK_TLS_KEY_FILE) are required: the API server calls admission "
            "webhooks over HTTPS only (`tke-eni-ip-webhook certs` provisions them; "
            "--insecure-http is for benchmarks and debugging)"
        )


def parser_for(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tke-eni-ip-webhook",
        description="Mutating admission webhook of TKE VPC-CNI (add-pod-eni-ip-limit-webhook): "
        "adds tke.cloud.tencent.com/eni-ip to the requests and limits of every new pod that "
        "takes an ENI IP. Subcommand: `tke-eni-ip-webhook certs --help` provisions the "
        "serving certificate (Secret + caBundle).",
    )
    add_fields(parser, Settings, _HELP, env, env_name)
    return parser


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    parser = parser_for(env)
    values = vars(parser.parse_args(argv))
    _check(parser, values)
    return Settings(**values)
