"""Settings: every value has a CLI flag, an environment variable and a
default (flag > env > default, ``kit.settings``). Documented in
docs/scheduler-extender.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.models import SUBNET_STATUS_CONFIGMAP, SUBNET_STATUS_KEY
from core.names import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE
from kit import logs
from kit.settings import Flag, Spec, one_of, positive
from kit.settings import effective as effective_config
from kit.tlsserve import check_serving, serving_help


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8443
    health_port: int = 8080
    tls_cert_file: str = ""
    tls_key_file: str = ""
    client_ca_file: str = ""
    client_names: str = ""
    insecure_http: bool = False
    read_timeout: float = 10.0
    filter_path: str = "/filter"
    prioritize_path: str = "/prioritize"
    kubeconfig: str = ""  # empty: in-cluster service account
    configmap_namespace: str = CONFIGMAP_NAMESPACE
    configmap_name: str = CONFIGMAP_NAME
    status_configmap_name: str = SUBNET_STATUS_CONFIGMAP
    status_key: str = SUBNET_STATUS_KEY
    # a 15,000-node full-Nodes ExtenderArgs (bench/extender.py, kwok-like Nodes)
    # is 43,215,428 bytes: 64 MiB leaves 1.55x (4.4 KB per Node at 15,000)
    max_body_bytes: int = 64 * 1024 * 1024
    json_codec: str = "auto"
    threads: int = 4
    stale_after: float = 30.0
    watch_timeout: int = 300
    list_page_size: int = 500
    log_level: str = "info"
    log_format: str = "json"

    def effective(self) -> dict[str, Any]:
        """For the start-up log (nothing secret in here: the kubeconfig is a path)."""
        return effective_config(self)


_HELP = {
    **serving_help(
        port="port of the verbs (HTTPS with a required client certificate)",
        tls_cert_file="serving certificate (PEM; reloaded when it changes)",
        insecure_http="serve the verbs over plain HTTP without any client check "
        "(local debugging only; never in a cluster)",
    ),
    "client_ca_file": "CA bundle that kube-scheduler's client certificate must chain to",
    "client_names": "comma-separated names, one of which the client certificate's CN or a "
    "DNS SAN must carry; empty: any certificate of the client CA",
    "filter_path": "HTTP path of the filter verb (urlPrefix + '/' + filterVerb)",
    "prioritize_path": "HTTP path of the prioritize verb",
    "kubeconfig": "kubeconfig file; empty = in-cluster service account",
    "configmap_namespace": "namespace of the ipamd ConfigMaps",
    "configmap_name": "ConfigMap with TKE_ENI_IPAMD_SUBNET_ID / TKE_ENI_IPAMD_VPC_ID",
    "status_configmap_name": "ConfigMap where ipamd publishes subnet status",
    "status_key": "key of the subnet status JSON in that ConfigMap",
    "max_body_bytes": "larger request bodies are refused with HTTP 413",
    "json_codec": "auto (msgspec when installed), msgspec or stdlib",
    "threads": "worker threads of the verbs' server",
    "stale_after": "seconds a watch may be down before its cache counts as stale",
    "watch_timeout": "seconds per watch request before it is renewed",
    "list_page_size": "objects per list page (limit/continue)",
}


def env_name(field: str) -> str:
    if field == "kubeconfig":
        return "KUBECONFIG"
    return "TKE_EXTENDER_" + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


TLS_FLAGS = ("tls_cert_file", "tls_key_file", "client_ca_file")


_CHECKS = {"read_timeout": positive, "max_body_bytes": positive, "threads": positive}
_PARSE = {"json_codec": one_of("auto", "msgspec", "stdlib")}


def _flags() -> tuple[Flag, ...]:
    defaults = Settings()
    return tuple(
        Flag(name, env_name(name), getattr(defaults, name), help_text,
             parse=_PARSE.get(name), check=_CHECKS.get(name))
        for name, help_text in _HELP.items()
    ) + logs.flags("TKE_EXTENDER_")


SPEC = Spec(
    "tke-eni-scheduler-extender",
    "kube-scheduler extender for TKE VPC-CNI (tke-eni-ip-scheduler).",
    _flags(),
)


def _missing_tls(missing: list[str]) -> str:
    return (
        f"{', '.join(missing)} not set: the extender serves TLS and requires "
        "kube-scheduler's client certificate (--tls-cert-file, --tls-key-file, "
        "--client-ca-file or their env vars); --insecure-http serves plain HTTP, "
        "for local debugging only"
    )


def _check(values: dict[str, Any]) -> None:
    for path in ("filter_path", "prioritize_path"):
        if not values[path].startswith("/"):
            values[path] = "/" + values[path]
    check_serving(values, TLS_FLAGS, _missing_tls)


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Flag > env > default; a bad value exits 2 with the usage and the reason."""
    return Settings(**SPEC.load_or_exit(argv, env, check=_check).values)
