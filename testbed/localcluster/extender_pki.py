"""Certificates for mutual TLS between kube-scheduler and the scheduler extender,
made with the ``openssl`` CLI like the control plane's (localcluster.certs).

Two CAs, as a cluster should have them:

- the serving CA signs the extender's serving certificate (loopback and the
  Service's names); kube-scheduler trusts it (``tlsConfig.caFile``);
- the client CA signs only kube-scheduler's client certificate
  (``CN=system:kube-scheduler``); the extender requires a certificate of this
  CA (``--client-ca-file``). A certificate of any other CA — the cluster's
  admin or a kubelet — is refused at the handshake.

A third "stranger" CA signs one more client certificate, for tests that check
that refusal. Each CA can be re-issued (``rotate_server``) to test reloading.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcluster.certs import _openssl

SERVICE_NAMES = (
    "localhost",
    "tke-eni-ip-scheduler",
    "tke-eni-ip-scheduler.kube-system",
    "tke-eni-ip-scheduler.kube-system.svc",
    "tke-eni-ip-scheduler.kube-system.svc.cluster.local",
)
SCHEDULER_CN = "system:kube-scheduler"
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


@dataclass(frozen=True)
class ExtenderPKI:
    directory: Path
    server_ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate of another CA
    stranger_key: Path

    def extender_args(self) -> list[str]:
        """The extender's TLS flags."""
        return [
            "--tls-cert-file", str(self.server_cert),
            "--tls-key-file", str(self.server_key),
            "--client-ca-file", str(self.client_ca),
        ]

    def tls_config(self) -> dict[str, Any]:
        """``extenders[].tlsConfig`` of kube-scheduler (with ``enableHTTPS: true``)."""
        return {
            "certFile": str(self.client_cert),
            "keyFile": str(self.client_key),
            "caFile": str(self.server_ca),
        }

    def client_context(self, *, with_certificate: bool = True,
                       stranger: bool = False) -> ssl.SSLContext:
        """A client context that trusts the serving CA and presents the scheduler's
        certificate (or none, or the stranger's)."""
        ctx = ssl.create_default_context(cafile=str(self.server_ca))
        if stranger:
            ctx.load_cert_chain(str(self.stranger_cert), str(self.stranger_key))
        elif with_certificate:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


def _ca(d: Path, name: str, cn: str) -> None:
    _openssl("req", "-x509", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "3650", "-sha256", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)


def _leaf(d: Path, name: str, ca: str, subject: str, extensions: str) -> None:
    _openssl("req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "365", "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.crt", cwd=d)


def issue_server(directory: Path, names: tuple[str, ...] = SERVICE_NAMES,
                 ips: tuple[str, ...] = ("127.0.0.1",)) -> None:
    """(Re)issue the serving certificate from the serving CA (new key, new serial)."""
    sans = ",".join([*(f"DNS:{n}" for n in names), *(f"IP:{ip}" for ip in ips)])
    _leaf(directory, "extender", "extender-ca", "/CN=tke-eni-ip-scheduler",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")


def make_extender_pki(directory: Path, names: tuple[str, ...] = SERVICE_NAMES,
                      ips: tuple[str, ...] = ("127.0.0.1",)) -> ExtenderPKI:
    """Write the CAs and certificates into ``directory`` (created, mode 0700)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    d = directory
    _ca(d, "extender-ca", "tke-eni-ip-scheduler-serving-ca")
    _ca(d, "scheduler-client-ca", "tke-eni-ip-scheduler-client-ca")
    _ca(d, "stranger-ca", "some-other-ca")
    issue_server(d, names, ips)
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" \
                 "extendedKeyUsage=clientAuth\n"
    _leaf(d, "kube-scheduler-client", "scheduler-client-ca", f"/CN={SCHEDULER_CN}", client_ext)
    _leaf(d, "stranger-client", "stranger-ca", f"/CN={SCHEDULER_CN}", client_ext)
    return ExtenderPKI(
        directory=d,
        server_ca=d / "extender-ca.crt",
        server_cert=d / "extender.crt",
        server_key=d / "extender.key",
        client_ca=d / "scheduler-client-ca.crt",
        client_cert=d / "kube-scheduler-client.crt",
        client_key=d / "kube-scheduler-client.key",
        stranger_cert=d / "stranger-client.crt",
        stranger_key=d / "stranger-client.key",
    )
