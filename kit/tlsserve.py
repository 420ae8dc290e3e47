"""TLS for a daemon's WSGI server (cheroot): the certificate files, a server
context built from them with clear errors, a context that is rebuilt when the
files change, and cheroot's TLS hook that wraps sockets without a handshake
(the server drives the handshake itself, non-blocking).

Knows no component: each daemon passes its own flag names as labels and gets
reload results through a callback (its own log lines and metric names).

- A client certificate is required when ``client_ca_file`` is set (it must
  chain to that CA; the scheduler extender: kube-scheduler presents one), and
  ``require_client_cert`` makes an unset CA an error; with neither, none is
  asked for (the admission webhook).
- Reload: the files are stat'ed at most once per ``check_interval`` when a
  context is asked for; when one changed (a Secret update swaps a symlink) a
  new context is built. A broken set (a key that does not match, a half-copied
  file) is reported as a failure and the previous context stays.
"""

from __future__ import annotations

import io
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheroot import makefile as cheroot_makefile
from cheroot.ssl import Adapter

from kit.settings import SettingsError

#: what is reported through ``on_event``: (kind, fields); kinds are
#: ``"tls files reloaded"`` (fields: result="ok") and ``"tls reload failed"``
#: (fields: result="failed", error=<message>)
EventSink = Callable[[str, dict[str, Any]], None]

#: environ key: the context generation a connection was made with
GENERATION_KEY = "tke.tls_generation"


class TLSConfigError(ValueError):
    """The certificate, key or client CA cannot be used (message says which and why)."""


@dataclass(frozen=True)
class TLSFiles:
    """Serving certificate (PEM, may carry the chain), its key, and optionally
    the CA bundle client certificates must chain to (see module docstring).
    The labels name the settings in errors (a daemon passes its flag names)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    cert_label: str = "certificate file"
    key_label: str = "key file"
    client_ca_label: str = "client CA file"
    #: True: an empty ``client_ca_file`` is an error (a daemon that must never
    #: serve without client certificates says so); a set ``client_ca_file``
    #: requires client certificates either way
    require_client_cert: bool = False

    @property
    def client_cert_required(self) -> bool:
        return self.require_client_cert or bool(self.client_ca_file)

    def paths(self) -> tuple[tuple[str, str], ...]:
        files: tuple[tuple[str, str], ...] = (
            (self.cert_label, self.cert_file), (self.key_label, self.key_file))
        if self.client_cert_required:
            files += ((self.client_ca_label, self.client_ca_file),)
        return files


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


def _load_client_ca(ctx: ssl.SSLContext, files: TLSFiles) -> None:
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


def build_context(files: TLSFiles) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with a client CA it requires a client
    certificate that CA signed.

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
    if files.client_cert_required:
        _load_client_ca(ctx, files)
    return ctx


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)  # follows symlinks: a Secret volume swaps ..data
    except OSError:
        return (-1,)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ReloadingContext:
    """The current server context; rebuilt when one of the files changed
    (checked at most once per ``check_interval`` seconds)."""

    def __init__(self, files: TLSFiles, *, check_interval: float = 1.0,
                 on_event: EventSink | None = None) -> None:
        self.files = files
        self.check_interval = check_interval
        self._on_event = on_event
        self._lock = threading.Lock()
        self._stamps = self._current_stamps()
        self._context = build_context(files)
        self._checked = time.monotonic()
        self.generation = 0  # +1 per successful reload
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
                self._rebuild()
            return self._context

    def _rebuild(self) -> None:
        try:
            context = build_context(self.files)
        except TLSConfigError as exc:
            self.failures += 1
            self._emit("tls reload failed", result="failed", error=str(exc))
            return
        self._context = context
        self.generation += 1
        self.reloads += 1
        self._emit("tls files reloaded", result="ok")

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)


class LazyTLSAdapter(Adapter):
    """cheroot's TLS hook: wraps an accepted socket with the current context and
    no handshake (the server drives it, non-blocking); the environ carries the
    context's generation (``GENERATION_KEY``), so requests on connections made
    before a reload can be told apart."""

    def __init__(self, contexts: ReloadingContext) -> None:
        super().__init__(contexts.files.cert_file, contexts.files.key_file)
        self.contexts = contexts

    def bind(self, sock: Any) -> Any:
        return sock

    def wrap(self, sock: Any) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        ctx = self.contexts.current()
        generation = self.contexts.generation
        wrapped = ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {**self.get_environ(wrapped), GENERATION_KEY: generation}

    def get_environ(self, sock: Any = None) -> dict[str, Any]:
        return {"wsgi.url_scheme": "https", "HTTPS": "on"}

    def makefile(self, sock: Any, mode: str = "r", bufsize: int = io.DEFAULT_BUFFER_SIZE) -> Any:
        return cheroot_makefile.MakeFile(sock, mode, bufsize)


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def check_serving(values: dict[str, Any], tls_fields: tuple[str, ...],
                  missing_message: Callable[[list[str]], str]) -> None:
    """The serving settings of a TLS daemon (a ``kit.settings`` check): all of
    ``tls_fields`` set, or ``insecure_http`` and none of them; ``health_port``
    apart from ``port``. ``missing_message`` gets the unset flags' names and
    says what the daemon needs (its own words). Raises ``SettingsError``."""
    tls_set = [_flag(k) for k in tls_fields if values[k]]
    if values["insecure_http"]:
        if tls_set:
            raise SettingsError(f"--insecure-http and {', '.join(tls_set)} together: choose one")
    elif len(tls_set) != len(tls_fields):
        raise SettingsError(missing_message([_flag(k) for k in tls_fields if not values[k]]))
    if values["port"] != 0 and values["health_port"] == values["port"]:
        raise SettingsError("--health-port must differ from --port")


def serving_help(*, port: str, tls_cert_file: str, insecure_http: str) -> dict[str, str]:
    """Help texts of a TLS daemon's serving settings (field -> text), in flag
    order; each daemon names its fields' flags and env vars itself and adds
    its own. The three arguments are what differs between daemons."""
    return {
        "host": "address to listen on",
        "port": port,
        "health_port": "plain-HTTP port with only /healthz, /readyz and /metrics "
        "(probes, Prometheus); negative: none",
        "tls_cert_file": tls_cert_file,
        "tls_key_file": "private key of the serving certificate (PEM)",
        "insecure_http": insecure_http,
        "read_timeout": "seconds for a TLS handshake, for a connection's first bytes and for "
        "each read of a request",
    }
