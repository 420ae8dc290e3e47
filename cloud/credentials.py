"""Where the secret comes from: explicit settings, the environment
(``TENCENTCLOUD_SECRET_ID``/``_KEY``, optional ``TENCENTCLOUD_SESSION_TOKEN``),
the profile file (``~/.tencentcloud/credentials``, INI section ``[default]``
with ``secret_id``/``secret_key``), or the CVM role through the metadata
service (``cam/security-credentials/<role>``, refreshed before it expires).
Secrets are never logged: ``Creds.__repr__`` hides them."""

from __future__ import annotations

import configparser
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cloud.metadata import MetadataClient, MetadataError
from cloud.settings import CloudSettings

log = logging.getLogger(__name__)
REFRESH_BEFORE_S = 300


class CredentialsError(Exception):
    """No usable credential was found; the message lists where we looked."""


@dataclass(frozen=True)
class Creds:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    source: str = "settings"


class CredentialProvider(Protocol):
    def get(self) -> Creds: ...


class StaticProvider:
    def __init__(self, creds: Creds) -> None:
        self._creds = creds

    def get(self) -> Creds:
        return self._creds


class RoleProvider:
    """Temporary credentials of the CVM role, from the metadata service."""

    def __init__(self, metadata_url: str, role: str | None = None, timeout_s: float = 2.0) -> None:
        self.metadata = MetadataClient(metadata_url, timeout_s)
        self.role = role
        self._cached: Creds | None = None
        self._lock = threading.Lock()

    def _fetch(self, path: str) -> str:
        try:
            return self.metadata.get(path)
        except MetadataError as exc:
            raise CredentialsError(str(exc)) from exc

    def get(self) -> Creds:
        with self._lock:
            c = self._cached
            if c is not None and (c.expires_at or 0) - time.time() > REFRESH_BEFORE_S:
                return c
            role = self.role or self._fetch("cam/security-credentials/").strip().splitlines()[0]
            raw = self._fetch(f"cam/security-credentials/{role}")
            try:
                data = json.loads(raw)
                c = Creds(
                    str(data["TmpSecretId"]),
                    str(data["TmpSecretKey"]),
                    str(data["Token"]),
                    float(data["ExpiredTime"]),
                    f"cvm-role:{role}",
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise CredentialsError(f"role {role}: malformed credentials reply") from exc
            log.info(
                "cloud credentials from CVM role %s (id %s…, expires %d)",
                role,
                c.secret_id[:8],
                int(c.expires_at or 0),
            )
            self._cached = c
            return c


def _profile(path: Path) -> Creds | None:
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise CredentialsError(f"credentials file {path}: {exc}") from exc
    section = parser["default"] if parser.has_section("default") else None
    if section is None or not section.get("secret_id") or not section.get("secret_key"):
        return None
    return Creds(
        section["secret_id"], section["secret_key"], section.get("token"), source=f"file:{path}"
    )


def provider_for(
    settings: CloudSettings, environ: Mapping[str, str] | None = None
) -> CredentialProvider:
    """The first source that has credentials, in the order of the module doc."""
    env = os.environ if environ is None else environ
    if settings.secret_id and settings.secret_key:
        return StaticProvider(Creds(settings.secret_id, settings.secret_key, settings.token))
    if env.get("TENCENTCLOUD_SECRET_ID") and env.get("TENCENTCLOUD_SECRET_KEY"):
        return StaticProvider(
            Creds(
                env["TENCENTCLOUD_SECRET_ID"],
                env["TENCENTCLOUD_SECRET_KEY"],
                env.get("TENCENTCLOUD_SESSION_TOKEN") or None,
                source="env",
            )
        )
    path = Path(settings.credentials_file or Path.home() / ".tencentcloud" / "credentials")
    found = _profile(path)
    if found is not None:
        return StaticProvider(found)
    return RoleProvider(settings.metadata_url, settings.role)
