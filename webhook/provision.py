"""``tke-eni-ip-webhook certs``: the serving certificate without an extra
operator. Idempotent; each step answers "what if we stop right here":

1. Read the Secret. Absent → issue a CA + certificate and create it (a
   concurrent run that created it first wins: 409 → use theirs). Present and
   usable (key matches, signed by its ca.crt, names the Service, not within
   --renew-before of expiry) → keep it.
2. Expiring or unusable → issue a new set; FIRST put the new CA into every
   webhook's caBundle beside the current one (the API server then trusts the
   old and the new certificate), THEN replace the Secret (optimistic:
   resourceVersion). A stop between the two leaves an extra CA in the bundle
   and the old, still-served certificate: harmless; the next run starts over.
3. Make each webhook's ``clientConfig.caBundle`` = the Secret's CA plus at
   most one earlier CA that has not expired (pods pick up a new Secret within
   the kubelet's sync period; until then they serve the earlier certificate).
   JSON patch with a ``test`` of each webhook's name at its index, so a
   concurrent edit of the list makes the patch fail (and we retry) instead of
   writing into the wrong webhook.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from kit import logs

from . import pki
from .provision_config import CertsSettings

log = logging.getLogger("tke_eni_webhook.certs")

KEYS = ("tls.crt", "tls.key", "ca.crt")


class ProvisionError(RuntimeError):
    """The certificate could not be provisioned (message: what and why)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    secret: str  # "created", "kept", "renewed", "taken" (a concurrent run created it)
    ca_bundle: str  # "patched" or "unchanged"
    not_after: dt.datetime
    reason: str = ""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bundle_of(secret: Any) -> pki.Bundle | None:
    data = (secret.data or {}) if secret is not None else {}
    try:
        parts = [base64.b64decode(data[k], validate=True) for k in KEYS]
    except (KeyError, ValueError, TypeError):
        return None
    return pki.Bundle(*parts)


def _api_error(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or exc
    return f"HTTP {status}: {reason}" if status else str(exc)


class Provisioner:
    def __init__(self, settings: CertsSettings, core_v1: Any, admission_v1: Any, *,
                 now: Any = None, sleep: Any = time.sleep) -> None:
        self.s = settings
        self.core = core_v1
        self.adm = admission_v1
        self.now = now or (lambda: dt.datetime.now(dt.UTC))
        self.sleep = sleep

    # ---- the Secret ----------------------------------------------------------------------
    def _issue(self) -> pki.Bundle:
        return pki.issue(self.s.names(), validity=self.s.duration("validity"),
                         ca_validity=self.s.duration("ca_validity"), now=self.now())

    def _secret_body(self, bundle: pki.Bundle, resource_version: str | None = None
                     ) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.s.secret_name, "namespace": self.s.namespace,
            "labels": {"app.kubernetes.io/name": "tke-eni-ip-webhook",
                       "app.kubernetes.io/part-of": "tke-vpc-cni",
                       "app.kubernetes.io/managed-by": "tke-eni-ip-webhook-certs"},
        }
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": meta,
                "data": {"tls.crt": _b64(bundle.cert), "tls.key": _b64(bundle.key),
                         "ca.crt": _b64(bundle.ca)}}

    def _read_secret(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.core.read_namespaced_secret(self.s.secret_name, self.s.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ProvisionError(f"cannot read Secret {self.where}: {_api_error(exc)}") from exc

    @property
    def where(self) -> str:
        return f"{self.s.namespace}/{self.s.secret_name}"

    def ensure_secret(self) -> tuple[pki.Bundle, str, str]:
        """(the bundle in the Secret, what happened, why)."""
        from kubernetes.client.exceptions import ApiException

        current = self._read_secret()
        if current is None:
            bundle = self._issue()
            try:
                self.core.create_namespaced_secret(self.s.namespace, self._secret_body(bundle))
            except ApiException as exc:
                if exc.status != 409:
                    raise ProvisionError(
                        f"cannot create Secret {self.where}: {_api_error(exc)}") from exc
                theirs = _bundle_of(self._read_secret())
                if theirs is None:
                    raise ProvisionError(
                        f"Secret {self.where} was created concurrently without "
                        f"{', '.join(KEYS)}; run again") from exc
                return theirs, "taken", "created by a concurrent run"
            return bundle, "created", "absent"
        old = _bundle_of(current)
        reason = ("it lacks one of " + ", ".join(KEYS) + " or holds invalid base64"
                  if old is None else pki.renewal_reason(
                      old, self.s.names(), renew_before=self.s.duration("renew_before"),
                      now=self.now()))
        if old is not None and not reason:
            return old, "kept", ""
        bundle = self._issue()
        # the new CA is trusted before any pod can serve the new certificate
        self.ensure_ca_bundle(bundle.ca, old.ca if old is not None else b"")
        body = self._secret_body(bundle, current.metadata.resource_version)
        try:
            self.core.replace_namespaced_secret(self.s.secret_name, self.s.namespace, body)
        except ApiException as exc:
            raise ProvisionError(
                f"cannot replace Secret {self.where} ({reason}): {_api_error(exc)}; "
                "the caBundle already trusts both CAs; run again") from exc
        return bundle, "renewed", reason

    # ---- the caBundle ----------------------------------------------------------------------
    def _desired(self, ca: bytes, current: bytes, also: bytes) -> bytes:
        now = self.now()
        keep: list[bytes] = []
        for cert in pki.certificates(also) + pki.certificates(current):
            if cert in keep or cert in pki.certificates(ca):
                continue
            if x509.load_pem_x509_certificate(cert).not_valid_after_utc > now:
                keep.append(cert)
        return b"".join(pki.certificates(ca) + keep[:1])

    def _read_config(self) -> Any:
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + self.s.wait_timeout
        name = self.s.webhook_configuration
        while True:
            try:
                return self.adm.read_mutating_webhook_configuration(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise ProvisionError(f"cannot read MutatingWebhookConfiguration {name}: "
                                         f"{_api_error(exc)}") from exc
            if time.monotonic() >= deadline:
                raise ProvisionError(
                    f"MutatingWebhookConfiguration {name} does not exist after "
                    f"--wait-timeout {self.s.wait_timeout:g}s: apply deploy/webhook first")
            logs.event(log, logging.INFO, "waiting for the MutatingWebhookConfiguration",
                       name=name)
            self.sleep(2.0)

    def ensure_ca_bundle(self, ca: bytes, also: bytes = b"") -> bool:
        """Every webhook trusts ``ca`` (+ one earlier unexpired CA). True if patched."""
        from kubernetes.client.exceptions import ApiException

        name = self.s.webhook_configuration
        for _attempt in range(5):
            cfg = self._read_config()
            ops: list[dict[str, Any]] = []
            for i, hook in enumerate(cfg.webhooks or []):
                current = hook.client_config.ca_bundle or ""
                try:
                    current_pem = base64.b64decode(current) if current else b""
                except ValueError:
                    current_pem = b""
                want = _b64(self._desired(ca, current_pem, also))
                if current != want:
                    ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.name})
                    ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle",
                                "value": want})
            if not cfg.webhooks:
                raise ProvisionError(f"MutatingWebhookConfiguration {name} has no webhooks")
            if not ops:
                return False
            try:
                self.adm.patch_mutating_webhook_configuration(name, ops)
                return True
            except ApiException as exc:
                if exc.status not in (409, 422):
                    raise ProvisionError(f"cannot patch the caBundle of "
                                         f"MutatingWebhookConfiguration {name}: "
                                         f"{_api_error(exc)}") from exc
                logs.event(log, logging.INFO, "the webhook list changed meanwhile: retrying",
                           name=name, error=_api_error(exc))
        raise ProvisionError(f"MutatingWebhookConfiguration {name} kept changing: run again")

    def run(self) -> Outcome:
        bundle, what, reason = self.ensure_secret()
        patched = self.ensure_ca_bundle(bundle.ca)
        return Outcome(what, "patched" if patched else "unchanged",
                       pki.inspect(bundle.cert).not_after, reason)


def apis(kubeconfig: str) -> tuple[Any, Any]:
    from kubernetes import client, config

    if kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    return client.CoreV1Api(api), client.AdmissionregistrationV1Api(api)


def main(settings: CertsSettings) -> int:
    logs.setup(settings.log_level, settings.log_format)
    logs.event(log, logging.INFO, "provisioning the serving certificate",
               config=settings.effective(), names=settings.names())
    try:
        core_v1, adm_v1 = apis(settings.kubeconfig)
        outcome = Provisioner(settings, core_v1, adm_v1).run()
    except ProvisionError as exc:
        logs.event(log, logging.ERROR, "certificate not provisioned", error=str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 (process boundary: the API unreachable...)
        logs.event(log, logging.ERROR, "certificate not provisioned",
                   error=f"{type(exc).__name__}: {exc}")
        return 1
    logs.event(log, logging.INFO, "certificate ready", secret=outcome.secret,
               reason=outcome.reason, ca_bundle=outcome.ca_bundle,
               not_after=outcome.not_after.isoformat(),
               webhook_configuration=settings.webhook_configuration)
    return 0
