"""The one client of the CVM instance metadata service
(``http://metadata.tencentyun.com/latest/meta-data/``, or the emulator's
``http://127.0.0.1:PORT/meta/<instance-id>/latest/meta-data/``): plain-text
GETs with urllib, never through a proxy. Used by the device plugin (its
node's identity) and by the CVM-role credentials. Any failure, a 404
included, is ``MetadataError`` naming the URL."""

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
        """The text at ``path`` (relative to the base URL), stripped."""
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
