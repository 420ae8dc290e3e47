"""TLS files for a server: the serving certificate, its key and the client CA,
checked with clear errors and reloaded when they change. No extender logic
(used by ``tlsserve``)."""

from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: what is reported through ``on_event`` (kind, fields)
EventSink = Callable[[str, dict[str, Any]], None]


class TLSConfigError(ValueError):
    """The certificate, key or client CA cannot be used (message says which and why)."""


@dataclass(frozen=True)
class TLSFiles:
    """Serving certificate (PEM, may carry the chain), its key, and the CA bundle
    that client certificates must chain to. The labels name the settings in
    errors (a program passes its own flag names)."""

    cert_file: str
    key_file: str
    client_ca_file: str
    cert_label: str = "certificate file"
    key_label: str = "key file"
    client_ca_label: str = "client CA file"

    def paths(self) -> tuple[tuple[str, str], ...]:
        return (
            (self.cert_label, self.cert_file),
            (self.key_label, self.key_file),
            (self.client_ca_label, self.client_ca_file),
        )


def _check_readable(label: str, path: str) -> None:
    if not path:
        raise TLSConfigError(f"{label} is not set")
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise TLSConfigError(f"{label} {path}: cannot read: {exc.strerror or exc}") from exc
    if not head:
        raise TLSConfigError(f"{label} {path}: file is empty")


def build_context(files: TLSFiles) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the client CA.

    Raises :class:`TLSConfigError` naming the file and the problem: missing,
    unreadable, empty, not PEM, a key that does not match the certificate, a CA
    bundle without a certificate."""
    for label, path in files.paths():
        _check_readable(label, path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(files.cert_file, files.key_file)
    except ssl.SSLError as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            raise TLSConfigError(
                f"{files.key_label} {files.key_file} does not match the certificate in "
                f"{files.cert_label} {files.cert_file}"
            ) from exc
        raise TLSConfigError(
            f"{files.cert_label} {files.cert_file} / {files.key_label} {files.key_file}: "
            f"not a PEM certificate and matching private key ({exc.reason or text})"
        ) from exc
    try:
        ctx.load_verify_locations(cafile=files.client_ca_file)
    except ssl.SSLError as exc:
        raise TLSConfigError(
            f"{files.client_ca_label} {files.client_ca_file}: no PEM CA certificate in it "
            f"({exc.reason or exc})"
        ) from exc
    if not ctx.get_ca_certs():
        raise TLSConfigError(
            f"{files.client_ca_label} {files.client_ca_file}: no CA certificate in it"
        )
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a Secret volume swaps ..data
    except OSError:
        return (-1,)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ReloadingContext:
    """The current server context; rebuilt when one of the files changed."""

    def __init__(
        self,
        files: TLSFiles,
        *,
        check_interval: float = 1.0,
        on_event: EventSink | None = None,
    ) -> None:
        self.files = files
        self.check_interval = check_interval
        self._on_event = on_event
        self._lock = threading.Lock()
        self._stamps = self._current_stamps()
        self._context = build_context(files)
        self._checked = time.monotonic()
        self.reloads = 0
        self.failures = 0

    def _current_stamps(self) -> tuple[tuple[int, ...], ...]:
        return tuple(_stamp(p) for _, p in self.files.paths())

    def current(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            return self._context
        with self._lock:
            self._checked = now
            stamps = self._current_stamps()
            if stamps != self._stamps:
                self._stamps = stamps
                try:
                    self._context = build_context(self.files)
                except TLSConfigError as exc:
                    self.failures += 1
                    self._emit("tls reload failed", error=str(exc), result="failed")
                else:
                    self.reloads += 1
                    self._emit("tls files reloaded", result="ok")
            return self._context

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)
