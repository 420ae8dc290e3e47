"""Certificates and keys for a local control plane, made with the ``openssl`` CLI.

EC P-256 keys (fast to generate): a CA, the apiserver serving certificate
(loopback and in-cluster names), an admin client certificate in group
``system:masters``, and the service-account signing key pair.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

ADMIN_USER = "tke-localcluster-admin"
APISERVER_NAMES = (
    "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class ClusterPKI:
    """Paths of every PEM file the control plane and its clients use."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path

    @property
    def kubelet_client_cert(self) -> Path:
        """The apiserver's client certificate towards kubelets (group system:masters)."""
        return self.directory / "apiserver-kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.directory / "apiserver-kubelet-client.key"


def _openssl(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise RuntimeError("openssl not found: run hack/setup.sh (step: apt)") from exc
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed in {cwd}: {exc.stderr.strip()}") from exc


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def _leaf(d: Path, name: str, subject: str, extensions: str) -> None:
    _openssl("req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    (d / f"{name}.ext").write_text(extensions)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "365", "-sha256", "-extfile", f"{name}.ext",
             "-out", f"{name}.crt", cwd=d)


def make_pki(directory: Path, service_ip: str = "10.0.0.1",
             extra_ips: tuple[str, ...] = ()) -> ClusterPKI:
    """Write a fresh PKI into ``directory`` (created, mode 0700); the apiserver's
    certificate names loopback, ``service_ip`` and ``extra_ips``."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    d = directory
    _openssl("req", "-x509", "-new", *_EC, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "3650", "-sha256", "-subj", "/CN=tke-localcluster-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)
    sans = ",".join([*(f"DNS:{n}" for n in APISERVER_NAMES), "IP:127.0.0.1", f"IP:{service_ip}",
                     *(f"IP:{a}" for a in extra_ips)])
    _leaf(d, "apiserver", "/CN=kube-apiserver",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")
    _leaf(d, "admin", f"/O=system:masters/CN={ADMIN_USER}",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=clientAuth\n")
    _leaf(d, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
          "extendedKeyUsage=clientAuth\n")
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    return ClusterPKI(
        directory=d, ca_cert=d / "ca.crt", ca_key=d / "ca.key",
        apiserver_cert=d / "apiserver.crt", apiserver_key=d / "apiserver.key",
        admin_cert=d / "admin.crt", admin_key=d / "admin.key",
        sa_key=d / "sa.key", sa_pub=d / "sa.pub",
    )
