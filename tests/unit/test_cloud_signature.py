"""TC3-HMAC-SHA256: our signer agrees with the SDK's, and verify() catches
every kind of bad request."""

from __future__ import annotations

import hashlib

import pytest
from tencentcloud.common.sign import Sign

from vpcsim import signature

BODY = b'{"InstanceId": "ins-sim00001"}'
TS = 1_764_400_000  # 2025-11-29
HOST = "127.0.0.1:8930"
CT = "application/json"


def _sdk_signature(key: str, service: str, body: bytes, ts: int) -> str:
    canonical = (
        f"POST\n/\n\ncontent-type:{CT}\nhost:{HOST}\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    date = signature.utc_date(ts)
    to_sign = (
        f"TC3-HMAC-SHA256\n{ts}\n{date}/{service}/tc3_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )
    return str(Sign.sign_tc3(key, date, service, to_sign))


@pytest.mark.parametrize("service", ["vpc", "cvm"])
def test_sign_matches_sdk(service: str) -> None:
    ours = signature.sign("k3y", service=service, host=HOST, content_type=CT, body=BODY,
                          timestamp=TS)
    assert ours == _sdk_signature("k3y", service, BODY, TS)


def _auth(key: str = "k3y", ts: int = TS, body: bytes = BODY) -> signature.ParsedAuth:
    header = signature.authorization("AKIDx", key, service="vpc", host=HOST, content_type=CT,
                                     body=body, timestamp=ts)
    return signature.parse_authorization(header)


def test_verify_ok() -> None:
    signature.verify(_auth(), "k3y", host=HOST, content_type=CT, body=BODY,
                     timestamp_text=str(TS), now=TS + 10)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"body": b"{}"}, "AuthFailure.SignatureFailure"),
        ({"host": "127.0.0.1:1"}, "AuthFailure.SignatureFailure"),
        ({"now": TS + 301}, "AuthFailure.SignatureExpire"),
        ({"now": TS - 301}, "AuthFailure.SignatureExpire"),
        ({"ts_text": "yesterday"}, "InvalidParameter"),
    ],
)
def test_verify_failures(kwargs: dict[str, object], code: str) -> None:
    auth = _auth()
    with pytest.raises(signature.SignatureError) as err:
        signature.verify(
            auth, str(kwargs.get("key", "k3y")), host=str(kwargs.get("host", HOST)),
            content_type=CT, body=kwargs.get("body", BODY),  # type: ignore[arg-type]
            timestamp_text=str(kwargs.get("ts_text", TS)), now=float(kwargs.get("now", TS)),  # type: ignore[arg-type]
        )
    assert err.value.code == code


def test_date_must_match_timestamp() -> None:
    auth = _auth(ts=TS - 86400)
    with pytest.raises(signature.SignatureError) as err:
        signature.verify(auth, "k3y", host=HOST, content_type=CT, body=BODY,
                         timestamp_text=str(TS), now=TS)
    assert err.value.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    "header",
    ["", "Basic abc", "TC3-HMAC-SHA256 Credential=AKID/2025-11-29/vpc/tc3_request",
     "TC3-HMAC-SHA256 Credential=AKID/bad-date/vpc/tc3_request, SignedHeaders=content-type;host, "
     "Signature=" + "0" * 64],
)
def test_malformed_authorization(header: str) -> None:
    with pytest.raises(signature.SignatureError) as err:
        signature.parse_authorization(header)
    assert err.value.code == "AuthFailure.InvalidAuthorization"
