"""HTTPS for the emulator: a throw-away CA and a serving certificate.

At start the emulator makes a fresh CA (EC P-256, kept in memory only), signs a
server certificate for the names and addresses it serves, and writes the CA
certificate (PEM) to a file of the caller's choice. A client that trusts that
file (the Tencent SDK's ``HttpProfile(certification=...)``, ``curl --cacert``,
``REQUESTS_CA_BUNDLE`` for plain ``requests``) reaches the emulator over HTTPS by
changing only its endpoint. A new start makes a new CA: read the file again."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServingPair:
    """The CA certificate clients trust, and the server's chain and key (PEM)."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def __repr__(self) -> str:  # never print the key
        return f"ServingPair(ca={len(self.ca_pem)}B, cert={len(self.cert_pem)}B)"


def serving_names(host: str, extra: Iterable[str] = ()) -> list[str]:
    """Names the certificate covers: loopback, the bind address unless it is a
    wildcard, and ``extra``; duplicates and empty entries dropped, order kept."""
    names = [*LOOPBACK_NAMES]
    if host not in ("", "0.0.0.0", "::"):
        names.append(host)
    names.extend(n.strip() for n in extra)
    return list(dict.fromkeys(n for n in names if n))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if any(c.isspace() or c in "/:@" for c in name):
        raise ValueError(f"invalid TLS name {name!r}: not an IP address or a DNS name")
    return x509.DNSName(name)


def issue(names: Iterable[str], *, days: int = VALID_DAYS) -> ServingPair:
    """A fresh CA and a server certificate for ``names`` (DNS names or IPs)."""
    alt = [_general_name(n) for n in names]
    if not alt:
        raise ValueError("a serving certificate needs at least one name")
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tke-vpcsim local CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tke-vpcsim")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ServingPair(
        ca_pem=ca_cert.public_bytes(pem),
        cert_pem=cert.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def server_context(pair: ServingPair) -> ssl.SSLContext:
    """A server-side context holding the pair (TLS 1.2 or newer). The key touches
    disk only inside a private temporary directory removed before returning."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="tke-vpcsim-tls-") as tmp:
        chain, key = Path(tmp, "server.crt"), Path(tmp, "server.key")
        chain.write_bytes(pair.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pair.key_pem)
        ctx.load_cert_chain(chain, key)
    return ctx


def write_ca(path: Path, pair: ServingPair) -> None:
    """Write the CA certificate atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pair.ca_pem)
    tmp.chmod(0o644)
    tmp.replace(path)
