"""Resource ids, MAC addresses and request ids that look like the real ones."""

from __future__ import annotations

import secrets
import string
import uuid

_ALNUM = string.ascii_lowercase + string.digits


def new_id(prefix: str) -> str:
    """``<prefix>-`` and 8 lowercase alphanumerics, e.g. ``eni-3k9x0qzt``."""
    return prefix + "-" + "".join(secrets.choice(_ALNUM) for _ in range(8))


def new_mac() -> str:
    """An upper-case MAC in Tencent's ``20:90:6F`` range, as the API returns it."""
    tail = secrets.token_bytes(3)
    return "20:90:6F:" + ":".join(f"{b:02X}" for b in tail)


def new_request_id() -> str:
    return str(uuid.uuid4())


def looks_like(prefix: str, value: str) -> bool:
    """Whether ``value`` has the shape of an id of this kind."""
    head, dash, tail = value.partition("-")
    return bool(dash) and head == prefix and len(tail) == 8 and all(c in _ALNUM for c in tail)
