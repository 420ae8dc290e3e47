"""A small Kubernetes REST client for the node processes: JSON in and out over
``http.client`` + ``ssl`` (both in the standard library), with the
authentication a node needs — the in-cluster ServiceAccount (token file
re-read as the kubelet rotates it, ``ca.crt``) or a kubeconfig's cluster and
user (CA, client certificate, bearer token or token file).

Why not ``kubernetes.client``: importing it costs ~18 MB of RSS (its generated
models, urllib3, dateutil, ...) in every process that imports it, and a node
process only makes a handful of calls (docs/node.md, "Footprint"). Objects stay
plain dicts, as the API sends them.

``get`` is a ``kit.kubehttp.ApiGet``: ``kit.watch`` list+watch loops run over it
unchanged. Connections are kept alive and reused (a small pool); a watch stream
has one of its own, closed with the stream.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kit.kubehttp import Answer

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REREAD = 60.0  # seconds between reads of a token file (a projected token rotates)
POOL_SIZE = 4  # idle connections kept per client
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "PATCH"})  # retried once on a stale conn


class KubeConfigError(ValueError):
    """The kubeconfig or the in-cluster environment cannot be used (says which part)."""


class KubeApiError(RuntimeError):
    """A non-2xx answer (``status``), or ``status`` 0 when the server was not reached."""

    def __init__(self, method: str, path: str, status: int, reason: str, body: bytes = b"") -> None:
        self.status = status
        self.reason = reason
        self.body = body
        message = _message(body) or reason
        super().__init__(f"{method} {path}: HTTP {status} {message}".rstrip())


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    return str(doc.get("message", "")) if isinstance(doc, dict) else ""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who we are to the API server: at most one of a token, a token file, or a
    client certificate (PEM files, or PEM bytes from a kubeconfig's ``*-data``)."""

    token: str = ""
    token_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    cert_pem: bytes = b""
    key_pem: bytes = b""


class KubeLite:
    def __init__(
        self,
        server: str,
        *,
        ca_file: str = "",
        ca_pem: bytes = b"",
        credentials: Credentials | None = None,
        insecure: bool = False,
    ) -> None:
        url = urllib.parse.urlsplit(server)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise KubeConfigError(f"server {server!r}: want https://host[:port]")
        self.server = server.rstrip("/")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.base = url.path.rstrip("/")
        self.credentials = credentials or Credentials()
        self.context = _tls_context(ca_file, ca_pem, self.credentials, insecure) \
            if url.scheme == "https" else None  # fmt: skip
        self._token = self.credentials.token
        self._token_read = 0.0
        self._pool: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # --- requests --------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """One call; (status, body). ``KubeApiError`` with status 0 when the
        server cannot be reached (refused, TLS, timeout)."""
        target = self._target(path, query)
        data = None if body is None else json.dumps(body).encode()
        headers = self._headers(content_type if data is not None else "")
        for attempt in (0, 1):
            conn, reused = self._take(timeout)
            try:
                conn.request(method, target, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused and attempt == 0 and method in IDEMPOTENT:
                    continue  # the server closed an idle keep-alive connection
                raise KubeApiError(method, path, 0, str(exc) or type(exc).__name__) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise KubeApiError(method, path, 0, str(exc) or type(exc).__name__) from exc
            if resp.will_close:
                conn.close()
            else:
                self._give(conn)
            return resp.status, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def call(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """A JSON call: the decoded 2xx answer; ``KubeApiError`` otherwise."""
        status, payload = self.request(
            method, path, query, body, content_type=content_type, timeout=timeout
        )
        if not 200 <= status < 300:
            raise KubeApiError(method, path, status, http.client.responses.get(status, ""), payload)
        try:
            doc = json.loads(payload or b"{}")
        except ValueError as exc:
            raise KubeApiError(method, path, status, f"answer is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeApiError(method, path, status, "answer is not a JSON object")
        return doc

    def get(
        self, path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> StreamResponse | Answer:
        """``kit.kubehttp.ApiGet``: a GET whose non-2xx answer is returned with
        its body; a stream keeps a connection of its own until closed."""
        if not stream:
            return Answer(*self.request("GET", path, query, timeout=timeout))
        conn = self._connect(timeout)
        try:
            conn.request("GET", self._target(path, query), headers=self._headers(""))
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            conn.close()
            raise
        if not 200 <= resp.status < 300:
            try:
                return Answer(resp.status, resp.read())
            finally:
                conn.close()
        return StreamResponse(conn, resp)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    # --- plumbing --------------------------------------------------------------
    def _target(self, path: str, query: Sequence[tuple[str, str]]) -> str:
        target = self.base + path
        return f"{target}?{urllib.parse.urlencode(list(query))}" if query else target

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "tke-vpc-cni-node"}
        if content_type:
            headers["Content-Type"] = content_type
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _bearer(self) -> str:
        path = self.credentials.token_file
        if not path:
            return self._token
        now = time.monotonic()
        if not self._token or now - self._token_read > TOKEN_REREAD:
            try:
                with open(path, encoding="utf-8") as fh:
                    self._token = fh.read().strip()
                self._token_read = now
            except OSError:
                if not self._token:
                    raise
        return self._token

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _take(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            return self._connect(timeout), False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._pool) < POOL_SIZE:
                self._pool.append(conn)
                return
        conn.close()


class StreamResponse:
    """A watch stream, shaped as ``kit.kubehttp.HttpResponse``; its connection
    is its own and closes with it."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        self.connection = conn  # kit.kubehttp.interrupt shuts connection.sock down
        self.response = resp
        self.status = resp.status
        self.data = b""

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.response.read1(amt or 65536):
            yield chunk

    def release_conn(self) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.response.close()
        with contextlib.suppress(OSError):
            self.connection.close()


def _tls_context(ca_file: str, ca_pem: bytes, creds: Credentials, insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(
        cafile=ca_file or None, cadata=ca_pem.decode() if ca_pem else None
    )
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if creds.cert_file or creds.key_file:
        ctx.load_cert_chain(creds.cert_file, creds.key_file or None)
    elif creds.cert_pem:
        # ssl loads a chain only from files: a private file, gone once loaded
        with tempfile.TemporaryDirectory(prefix="kubelite-") as d:
            cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
            for path, pem in ((cert, creds.cert_pem), (key, creds.key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
            ctx.load_cert_chain(cert, key)
    return ctx


def in_cluster(environ: dict[str, str] | None = None, sa_dir: str = SA_DIR) -> KubeLite:
    """The pod's own ServiceAccount (``KUBERNETES_SERVICE_HOST``/``_PORT``)."""
    env = dict(os.environ) if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError(
            "not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset "
            "(give --kubeconfig)"
        )
    token = os.path.join(sa_dir, "token")
    if not os.path.isfile(token):
        raise KubeConfigError(f"in-cluster config: no ServiceAccount token at {token}")
    host = f"[{host}]" if ":" in host else host
    try:
        return KubeLite(
            f"https://{host}:{port}",
            ca_file=os.path.join(sa_dir, "ca.crt"),
            credentials=Credentials(token_file=token),
        )
    except (OSError, ssl.SSLError) as exc:
        raise KubeConfigError(f"in-cluster config: {sa_dir}/ca.crt: {exc}") from exc


def _pem(entry: dict[str, Any], key: str, where: str, base_dir: str) -> tuple[str, bytes]:
    """(file, pem bytes) of a kubeconfig field given as ``key`` or ``key-data``."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return "", base64.b64decode(data)
        except ValueError as exc:
            raise KubeConfigError(f"{where}: {key}-data is not base64: {exc}") from exc
    path = entry.get(key) or ""
    if path and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return str(path), b""


def from_kubeconfig(path: str, context: str = "") -> KubeLite:
    """The current (or named) context of a kubeconfig file: its cluster's server
    and CA, its user's client certificate, token or token file. Exec plugins and
    auth providers are refused (a node process never has them)."""
    import yaml  # only with a kubeconfig: in-cluster needs no YAML

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeConfigError(f"kubeconfig {path}: not a mapping")

    def named(kind: str, name: str) -> dict[str, Any]:
        for item in doc.get(f"{kind}s") or []:
            if isinstance(item, dict) and item.get("name") == name:
                found = item.get(kind)
                if isinstance(found, dict):
                    return found
        raise KubeConfigError(f"kubeconfig {path}: no {kind} named {name!r}")

    ctx = named("context", context or str(doc.get("current-context") or ""))
    cluster = named("cluster", str(ctx.get("cluster") or ""))
    user = named("user", str(ctx.get("user") or "")) if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username"):
        if user.get(unsupported):
            raise KubeConfigError(f"kubeconfig {path}: user {unsupported!r} is not supported "
                                  "on the node (use a client certificate or a token)")  # fmt: skip
    if cluster.get("tls-server-name") or cluster.get("proxy-url"):
        raise KubeConfigError(f"kubeconfig {path}: tls-server-name/proxy-url not supported")
    base = os.path.dirname(os.path.abspath(path))
    ca_file, ca_pem = _pem(cluster, "certificate-authority", f"kubeconfig {path} cluster", base)
    cert_file, cert_pem = _pem(user, "client-certificate", f"kubeconfig {path} user", base)
    key_file, key_pem = _pem(user, "client-key", f"kubeconfig {path} user", base)
    token_file = str(user.get("tokenFile") or "")
    creds = Credentials(
        token=str(user.get("token") or ""),
        token_file=os.path.join(base, token_file) if token_file else "",
        cert_file=cert_file, key_file=key_file, cert_pem=cert_pem, key_pem=key_pem,
    )  # fmt: skip
    try:
        return KubeLite(
            str(cluster.get("server") or ""),
            ca_file=ca_file,
            ca_pem=ca_pem,
            credentials=creds,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )
    except (OSError, ssl.SSLError) as exc:
        raise KubeConfigError(f"kubeconfig {path}: TLS material: {exc}") from exc


def load(kubeconfig: str = "") -> KubeLite:
    """``kubeconfig`` when given, else the in-cluster config."""
    return from_kubeconfig(kubeconfig) if kubeconfig else in_cluster()
