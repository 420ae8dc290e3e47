"""Pure: a node's cloud instance id.

Order: ``spec.providerID`` (``qcloud:///<zone-id>/ins-xxxxxxxx``,
``tencentcloud://ins-xxxxxxxx``, ``tencentcloud:///<zone>/ins-...`` or a plain
``ins-xxxxxxxx``); else the node label or annotation
``tke.cloud.tencent.com/instance-id``; else the legacy label
``cloud.tencent.com/node-instance-id``."""

from __future__ import annotations

import re
from collections.abc import Mapping

INSTANCE_ID_KEYS = ("tke.cloud.tencent.com/instance-id", "cloud.tencent.com/node-instance-id")
_INSTANCE_RE = re.compile(r"^ins-[0-9a-z]{8}$")


def parse_provider_id(provider_id: str | None) -> str | None:
    if not provider_id:
        return None
    text = provider_id.strip()
    _, sep, rest = text.partition("://")
    tail = rest if sep else text
    last = tail.rstrip("/").rsplit("/", 1)[-1]
    return last if _INSTANCE_RE.match(last) else None


def instance_id_of(
    provider_id: str | None,
    labels: Mapping[str, str] | None,
    annotations: Mapping[str, str] | None,
) -> str | None:
    found = parse_provider_id(provider_id)
    if found:
        return found
    for source in (labels or {}, annotations or {}):
        for key in INSTANCE_ID_KEYS:
            value = source.get(key, "").strip()
            if _INSTANCE_RE.match(value):
                return value
    return None
