"""Settings of the server: every value has a CLI flag, an environment variable
(``TKE_WEBHOOK_*``) and a default (flag > env > default, ``kit.settings``); the
effective settings are logged at start. Documented in docs/webhook.md. The
``certs`` subcommand's settings are in ``webhook.provision_config``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kit import logs
from kit.settings import Flag, Spec, positive
from kit.settings import effective as effective_config
from kit.tlsserve import check_serving, serving_help

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
        return effective_config(self)


_HELP = {
    **serving_help(
        port="HTTPS port of the admission endpoint (the API server calls it)",
        tls_cert_file="serving certificate (PEM, may carry the chain; reloaded when it changes)",
        insecure_http="serve plain HTTP (benchmarks and local debugging only: the API "
        "server calls webhooks over HTTPS only)",
    ),
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
}
_POSITIVE = ("read_timeout", "idle_timeout", "max_body_bytes", "threads")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


SPEC = Spec(
    "tke-eni-ip-webhook",
    "Mutating admission webhook of TKE VPC-CNI (add-pod-eni-ip-limit-webhook): adds "
    "tke.cloud.tencent.com/eni-ip to the requests and limits of every new pod that takes "
    "an ENI IP. Subcommand: `tke-eni-ip-webhook certs --help` provisions the serving "
    "certificate (Secret + caBundle).",
    tuple(
        Flag(name, env_name(name), getattr(Settings(), name), text,
             check=positive if name in _POSITIVE else None)
        for name, text in _HELP.items()
    ) + logs.flags(ENV_PREFIX),
)


def _missing_tls(_missing: list[str]) -> str:
    return (
        "--tls-cert-file and --tls-key-file (or TKE_WEBHOOK_TLS_CERT_FILE / "
        "TKE_WEBHOOK_TLS_KEY_FILE) are required: the API server calls admission "
        "webhooks over HTTPS only (`tke-eni-ip-webhook certs` provisions them; "
        "--insecure-http is for benchmarks and debugging)"
    )


def _check(values: dict[str, Any]) -> None:
    if not values["mutate_path"].startswith("/"):
        values["mutate_path"] = "/" + values["mutate_path"]
    check_serving(values, ("tls_cert_file", "tls_key_file"), _missing_tls)


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Flag > env > default; a bad value exits 2 with the usage and the reason."""
    return Settings(**SPEC.load_or_exit(argv, env, check=_check).values)
