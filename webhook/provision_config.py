"""Settings of ``tke-eni-ip-webhook certs`` (flag > env > default, like the
server's, ``kit.settings``; env names ``TKE_WEBHOOK_CERTS_*``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.duration import DurationError, parse_duration
from kit import logs
from kit.settings import Flag, SettingsError, Spec
from kit.settings import effective as effective_config

ENV_PREFIX = "TKE_WEBHOOK_CERTS_"
WEBHOOK_CONFIGURATION = "add-pod-eni-ip-limit-webhook"


@dataclass(frozen=True, slots=True)
class CertsSettings:
    namespace: str = "kube-system"
    service: str = "tke-eni-ip-webhook"
    secret_name: str = "tke-eni-ip-webhook-tls"  # noqa: S105 (a name, not a secret)
    webhook_configuration: str = WEBHOOK_CONFIGURATION
    cluster_domain: str = "cluster.local"
    extra_names: str = ""
    validity: str = "8760h"
    ca_validity: str = "87600h"
    renew_before: str = "720h"
    wait_timeout: float = 120.0
    kubeconfig: str = ""
    log_level: str = "info"
    log_format: str = "json"

    def effective(self) -> dict[str, Any]:
        return effective_config(self)

    def names(self) -> list[str]:
        """What the serving certificate must name: the Service's DNS names (the API
        server connects to <service>.<namespace>.svc), then --extra-names."""
        svc, ns = self.service, self.namespace
        out = [f"{svc}.{ns}.svc", svc, f"{svc}.{ns}"]
        if self.cluster_domain:
            out.append(f"{svc}.{ns}.svc.{self.cluster_domain}")
        out += [n.strip() for n in self.extra_names.split(",") if n.strip()]
        return out

    def duration(self, field: str) -> timedelta:
        return parse_duration(str(getattr(self, field)), what=f"--{field.replace('_', '-')}")


_HELP = {
    "namespace": "namespace of the webhook's Service and Secret",
    "service": "the webhook's Service (its DNS names go into the certificate)",
    "secret_name": "Secret (type kubernetes.io/tls: tls.crt, tls.key, ca.crt) the webhook's "
    "pods mount; created when absent, replaced when expiring or unusable",
    "webhook_configuration": "MutatingWebhookConfiguration whose webhooks get the CA as "
    "clientConfig.caBundle",
    "cluster_domain": "cluster DNS domain (adds <service>.<namespace>.svc.<domain>); empty: none",
    "extra_names": "comma-separated extra DNS names or IP addresses for the certificate "
    "(e.g. 127.0.0.1 when the API server calls a url on loopback)",
    "validity": "validity of the serving certificate (Go duration)",
    "ca_validity": "validity of the CA (Go duration)",
    "renew_before": "replace the certificate this long before it expires (Go duration); "
    "run the command again (CronJob) to renew",
    "wait_timeout": "seconds to wait for the MutatingWebhookConfiguration to exist",
    "kubeconfig": "kubeconfig file; empty = in-cluster service account",
}


def env_name(field: str) -> str:
    return "KUBECONFIG" if field == "kubeconfig" else ENV_PREFIX + field.upper()


SPEC = Spec(
    "tke-eni-ip-webhook certs",
    "Provision the webhook's serving certificate with no extra operator: create the Secret "
    "with a fresh CA and serving certificate when it is absent, expiring or unusable, and put "
    "the CA into the MutatingWebhookConfiguration's caBundle (idempotent: run it as a Job at "
    "install and as a CronJob for renewals).",
    tuple(Flag(name, env_name(name), getattr(CertsSettings(), name), text)
          for name, text in _HELP.items()) + logs.flags(ENV_PREFIX),
)


def _check(values: dict[str, Any]) -> None:
    for key in ("namespace", "service", "secret_name", "webhook_configuration"):
        if not values[key]:
            raise SettingsError(f"--{key.replace('_', '-')} must not be empty")
    settings = CertsSettings(**values)
    try:
        for key in ("validity", "ca_validity", "renew_before"):
            settings.duration(key)
        if settings.duration("validity") <= settings.duration("renew_before"):
            raise SettingsError("--validity must be longer than --renew-before")
    except DurationError as exc:
        raise SettingsError(str(exc)) from None
    if settings.wait_timeout < 0:
        raise SettingsError("--wait-timeout must not be negative")


def parse(argv: Sequence[str] | None = None,
          env: Mapping[str, str] | None = None) -> CertsSettings:
    """Flag > env > default; a bad value exits 2 with the usage and the reason."""
    return CertsSettings(**SPEC.load_or_exit(argv, env, check=_check).values)
