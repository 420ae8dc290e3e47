"""A tiny client of the instance metadata service: plain-text GETs with
urllib, 404 for unknown paths. Used only until the cloud layer ships one."""

from __future__ import annotations

import urllib.error
import urllib.request


class MetadataError(Exception):
    """The metadata service did not answer a path; the message names the URL."""


class MetadataClient:
    def __init__(self, base_url: str, timeout: float = 2.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        # never send metadata requests through a proxy
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, path: str) -> str:
        url = self.base_url + path.lstrip("/")
        if not url.startswith(("http://", "https://")):
            raise MetadataError(f"metadata URL {url!r} is not http(s)")
        try:
            with self._opener.open(url, timeout=self.timeout) as resp:
                body: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raise MetadataError(f"metadata GET {url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise MetadataError(f"metadata GET {url}: {exc}") from exc
        return body.decode().strip()
