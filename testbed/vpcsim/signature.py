"""TC3-HMAC-SHA256 request signing (Tencent Cloud API v3). Pure; the emulator
verifies with it and the unit tests check it against the SDK's own signer."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass

ALGORITHM = "TC3-HMAC-SHA256"
MAX_SKEW_S = 300

_AUTH = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<sid>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<svc>[a-z0-9]+)"
    r"/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;\-]+), Signature=(?P<sig>[0-9a-f]{64})$"
)


def _sha256hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def sign(
    secret_key: str, *, service: str, host: str, content_type: str, body: bytes, timestamp: int
) -> str:
    """The hex signature of a ``POST /`` request signing ``content-type;host``."""
    date = utc_date(timestamp)
    canonical = (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        + _sha256hex(body)
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n" + _sha256hex(canonical.encode())
    k_date = _hmac(("TC3" + secret_key).encode(), date)
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(k_signing, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    service: str,
    host: str,
    content_type: str,
    body: bytes,
    timestamp: int,
) -> str:
    sig = sign(
        secret_key,
        service=service,
        host=host,
        content_type=content_type,
        body=body,
        timestamp=timestamp,
    )
    return (
        f"{ALGORITHM} Credential={secret_id}/{utc_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={sig}"
    )


@dataclass(frozen=True, slots=True)
class ParsedAuth:
    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_authorization(header: str) -> ParsedAuth:
    m = _AUTH.match(header.strip())
    if m is None:
        raise SignatureError(
            "AuthFailure.InvalidAuthorization", "the Authorization header is malformed"
        )
    return ParsedAuth(m["sid"], m["date"], m["svc"], m["signed"], m["sig"])


def verify(
    auth: ParsedAuth,
    secret_key: str,
    *,
    host: str,
    content_type: str,
    body: bytes,
    timestamp_text: str,
    now: float | None = None,
) -> None:
    """Raise SignatureError (API codes) unless the request is correctly signed and fresh."""
    try:
        timestamp = int(timestamp_text)
    except ValueError as exc:
        raise SignatureError(
            "InvalidParameter",
            f"X-TC-Timestamp {timestamp_text!r} is not a unix time",
        ) from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > MAX_SKEW_S:
        raise SignatureError(
            "AuthFailure.SignatureExpire",
            f"the request timestamp {timestamp} is more than {MAX_SKEW_S} s from server time "
            f"{int(current)}",
        )
    if auth.date != utc_date(timestamp):
        raise SignatureError(
            "AuthFailure.SignatureFailure", "the credential date does not match X-TC-Timestamp"
        )
    if auth.signed_headers != "content-type;host":
        raise SignatureError(
            "AuthFailure.SignatureFailure", f"unsupported SignedHeaders {auth.signed_headers!r}"
        )
    want = sign(
        secret_key,
        service=auth.service,
        host=host,
        content_type=content_type,
        body=body,
        timestamp=timestamp,
    )
    if not hmac.compare_digest(want, auth.signature):
        raise SignatureError(
            "AuthFailure.SignatureFailure",
            "the provided signature does not match the request; check the secret key",
        )
