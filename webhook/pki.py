"""Certificates for the webhook's serving key: a fresh private CA signs one
serving certificate for the Service's DNS names (and any extra names or IP
addresses). The CA's key is used once and never stored: a renewal makes a
new CA, and the caBundle holds the old and the new CA for the hand-over
(``webhook.provision``). EC P-256 keys, SHA-256 signatures.

Also reads a certificate back (expiry, names) to decide whether it must be
renewed. Errors: :class:`PkiError` naming what was wrong."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PkiError(ValueError):
    """A certificate or key that cannot be used."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """PEM bytes, as stored in the Secret: tls.crt, tls.key, ca.crt."""

    cert: bytes
    key: bytes
    ca: bytes


@dataclass(frozen=True, slots=True)
class CertInfo:
    not_before: dt.datetime
    not_after: dt.datetime
    dns_names: frozenset[str]
    ips: frozenset[str]


def split_names(names: Sequence[str]) -> tuple[list[str], list[Address]]:
    """DNS names and IP addresses, each once, in order."""
    dns: list[str] = []
    ips: list[Address] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            if name not in dns:
                dns.append(name)
        else:
            if ip not in ips:
                ips.append(ip)
    return dns, ips


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(names: Sequence[str], *, validity: dt.timedelta, ca_validity: dt.timedelta,
          now: dt.datetime | None = None, ca_name: str = "tke-eni-ip-webhook-ca") -> Bundle:
    """A new CA and a serving certificate for ``names`` (the first DNS name is the CN)."""
    dns, ips = split_names(names)
    if not dns and not ips:
        raise PkiError("no DNS name or IP address to put in the certificate")
    now = now or dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)  # clock skew between nodes
    ca_key, leaf_key = _key(), _key()
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                               f"{ca_name}@{int(now.timestamp())}")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(now + ca_validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ip) for ip in ips]
    cn = dns[0] if dns else str(ips[0])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_subject)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(min(now + validity, now + ca_validity))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    enc = serialization.Encoding.PEM
    return Bundle(leaf.public_bytes(enc), _pem_key(leaf_key), ca_cert.public_bytes(enc))


def inspect(cert_pem: bytes, *, what: str = "certificate") -> CertInfo:
    """Validity and names of the first certificate in ``cert_pem``."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise PkiError(f"{what}: not a PEM certificate ({exc})") from None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = frozenset(san.get_values_for_type(x509.DNSName))
        ips = frozenset(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = frozenset(), frozenset()
    return CertInfo(cert.not_valid_before_utc, cert.not_valid_after_utc, dns, ips)


def certificates(bundle_pem: bytes) -> list[bytes]:
    """Each certificate of a PEM bundle, re-encoded (invalid blocks dropped)."""
    out: list[bytes] = []
    try:
        certs = x509.load_pem_x509_certificates(bundle_pem)
    except ValueError:
        return out
    for cert in certs:
        out.append(cert.public_bytes(serialization.Encoding.PEM))
    return out


def check_pair(bundle: Bundle) -> None:
    """The key matches the certificate and the CA signed it; PkiError otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(bundle.cert)
        key = serialization.load_pem_private_key(bundle.key, password=None)
        ca = x509.load_pem_x509_certificate(bundle.ca)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"unreadable certificate, key or CA ({exc})") from None
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.PEM, pub) != \
            key.public_key().public_bytes(serialization.Encoding.PEM, pub):
        raise PkiError("tls.key does not match tls.crt")
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise PkiError(f"tls.crt is not signed by ca.crt ({type(exc).__name__})") from None


def renewal_reason(bundle: Bundle, names: Sequence[str], *, renew_before: dt.timedelta,
                   now: dt.datetime | None = None) -> str:
    """Why the stored certificate must be replaced ("" when it is fine)."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        check_pair(bundle)
        info = inspect(bundle.cert, what="tls.crt")
        ca = inspect(bundle.ca, what="ca.crt")
    except PkiError as exc:
        return str(exc)
    if now + renew_before >= min(info.not_after, ca.not_after):
        return (f"expires {min(info.not_after, ca.not_after).isoformat()}, within "
                f"--renew-before {renew_before}")
    dns, ips = split_names(names)
    missing = [n for n in dns if n not in info.dns_names]
    missing += [str(ip) for ip in ips if str(ip) not in info.ips]
    if missing:
        return f"does not name {', '.join(missing)}"
    return ""
