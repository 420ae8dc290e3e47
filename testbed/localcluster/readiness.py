"""Wait until a started program answers its health endpoint."""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localcluster.process import ManagedProcess, tail


class NotReadyError(RuntimeError):
    """A component did not become ready; the message carries its log tail."""


@dataclass(frozen=True)
class TLSClient:
    """How to reach an HTTPS endpoint: CA to trust (None: do not verify) and a client cert."""

    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def context(self) -> ssl.SSLContext:
        if self.ca_cert is None:
            ctx = ssl._create_unverified_context()  # noqa: S323 - self-signed loopback endpoint
        else:
            ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key or self.client_cert))
        return ctx


def http_ok(url: str, tls: TLSClient | None = None, expect: str | None = None,
            timeout: float = 2.0) -> tuple[bool, str]:
    """GET ``url``: (True, body) on 200 whose body contains ``expect``; else (False, why)."""
    ctx = tls.context() if tls is not None and url.startswith("https://") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:  # noqa: S310
            body = resp.read().decode(errors="replace")
            if resp.status == 200 and (expect is None or expect in body):
                return True, body
            return False, f"HTTP {resp.status}: {body[:200]}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}"
    except (OSError, ssl.SSLError) as exc:
        return False, str(exc)


def wait_ready(proc: ManagedProcess, check: Callable[[], tuple[bool, str]],
               timeout: float, what: str) -> float:
    """Poll ``check`` until it passes; fail fast if ``proc`` exits. Returns seconds waited."""
    start = time.monotonic()
    last = "not checked yet"
    delay = 0.05
    while True:
        ok, last = check()
        if ok:
            return time.monotonic() - start
        code = proc.exit_code()
        if code is not None:
            raise NotReadyError(
                f"{proc.name} exited with code {code} before {what} was ready "
                f"(last check: {last}); log {proc.log_path}:\n{tail(proc.log_path)}")
        if time.monotonic() - start > timeout:
            raise NotReadyError(
                f"{proc.name} not ready after {timeout:.0f}s waiting for {what} "
                f"(last check: {last}); log {proc.log_path}:\n{tail(proc.log_path)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
