"""List+watch loops (one thread per kind) that keep the store current.

Plain JSON over the Kubernetes client's HTTP session (``_preload_content``
off): no model classes, so a 15,000-node list costs one ``json.loads`` per
page. Lists are paged (limit/continue); watches resume from the last
resourceVersion, ask for bookmarks, and re-list on 410 Gone. A failing watch
marks its kind down (the store turns that into "stale" after a while) and
retries with jittered backoff; the extender keeps answering from the cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from core.names import CRD_API_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP, PLURAL_VPC_IP_CLAIM

from .logs import event
from .store import KIND_CLAIMS, KIND_CONFIGMAPS, KIND_NODES, KIND_VPCENIS, KIND_VPCIPS, Store

log = logging.getLogger("tke_eni_extender.watch")


class HttpResponse(Protocol):
    status: int
    data: bytes

    def stream(
        self, amt: int | None = ..., decode_content: bool | None = ...
    ) -> Iterator[bytes]: ...

    def release_conn(self) -> None: ...

    def close(self) -> None: ...


class ApiGet(Protocol):
    """The one call the watch loops make: GET a path with query parameters."""

    def __call__(
        self, path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> HttpResponse: ...


class WatchError(RuntimeError):
    pass


class GoneError(WatchError):
    """410: the resourceVersion is too old; list again."""


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str  # store kind
    path: str  # collection path
    names: tuple[str, ...] = ()  # keep only these object names (ConfigMaps)


def resources(configmap_namespace: str, configmap_names: tuple[str, ...]) -> list[Resource]:
    crd = f"/apis/{CRD_API_VERSION}"
    return [
        Resource(KIND_NODES, "/api/v1/nodes"),
        Resource(KIND_VPCIPS, f"{crd}/{PLURAL_VPC_IP}"),
        Resource(KIND_VPCENIS, f"{crd}/{PLURAL_VPC_ENI}"),
        Resource(KIND_CLAIMS, f"{crd}/{PLURAL_VPC_IP_CLAIM}"),
        Resource(
            KIND_CONFIGMAPS,
            f"/api/v1/namespaces/{configmap_namespace}/configmaps",
            configmap_names,
        ),
    ]


class Reflector:
    """Keeps one kind of the store in step with the API server."""

    def __init__(
        self,
        store: Store,
        get: ApiGet,
        resource: Resource,
        *,
        page_size: int = 500,
        watch_timeout: int = 300,
        max_backoff: float = 30.0,
    ) -> None:
        self._store = store
        self._get = get
        self._res = resource
        self._page_size = page_size
        self._watch_timeout = watch_timeout
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self._response: HttpResponse | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{resource.kind}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.request_stop()
        self.join(timeout)

    def request_stop(self) -> None:
        """Ask the thread to end (and end its open watch) without waiting."""
        self._stop.set()
        response = self._response
        if response is not None:
            _interrupt(response)

    def join(self, timeout: float) -> None:
        self._thread.join(max(0.0, timeout))

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                self._store.watch_up(self._res.kind)
                while not self._stop.is_set():
                    version = self._watch(version)
            except GoneError:
                event(log, logging.INFO, "watch expired, listing again", kind=self._res.kind)
                continue
            except Exception as exc:  # noqa: BLE001 (process boundary: keep the loop alive)
                if self._stop.is_set():
                    break
                failures += 1
                self._store.watch_down(self._res.kind)
                delay = min(self._max_backoff, 0.5 * 2 ** min(failures, 6))
                delay *= 0.5 + random.random() / 2  # noqa: S311 (jitter, not crypto)
                event(
                    log,
                    logging.WARNING,
                    "list/watch failed, cache kept, retrying",
                    kind=self._res.kind,
                    path=self._res.path,
                    error=str(exc)[:500],
                    retry_in=round(delay, 2),
                )
                self._stop.wait(delay)

    def _keep(self, obj: dict[str, Any]) -> bool:
        if not self._res.names:
            return True
        meta = obj.get("metadata")
        return isinstance(meta, dict) and meta.get("name") in self._res.names

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("limit", str(self._page_size))]
            if token:
                query.append(("continue", token))
            page = self._json(self._get(self._res.path, query, stream=False, timeout=60.0))
            for item in page.get("items") or []:
                if isinstance(item, dict) and self._keep(item):
                    items.append(item)
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                version = str(meta.get("resourceVersion", ""))
                break
        self._store.replace(self._res.kind, items)
        event(log, logging.INFO, "listed", kind=self._res.kind, objects=len(items))
        return version

    def _watch(self, version: str) -> str:
        query = [
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self._watch_timeout)),
        ]
        if version:
            query.append(("resourceVersion", version))
        response = self._get(self._res.path, query, stream=True, timeout=self._watch_timeout + 30.0)
        if response.status != 200:
            self._json(response)  # raises with the server's message
        self._response = response
        try:
            for line in _lines(response):
                version = self._event(line, version)
                if self._stop.is_set():
                    break
        finally:
            self._response = None
            response.release_conn()
        return version

    def _event(self, line: bytes, version: str) -> str:
        ev = json.loads(line)
        kind, obj = ev.get("type"), ev.get("object") or {}
        meta = obj.get("metadata") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise GoneError(obj.get("message", "gone"))
            raise WatchError(f"watch error {code}: {obj.get('message', '')}")
        new_version = str(meta.get("resourceVersion") or version)
        if kind == "BOOKMARK":
            return new_version
        if kind in ("ADDED", "MODIFIED", "DELETED") and self._keep(obj):
            self._store.apply(self._res.kind, kind, obj)
        return new_version

    def _json(self, response: HttpResponse) -> dict[str, Any]:
        data = response.data
        if response.status != 200:
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data[:200].decode(errors="replace")
            hint = ""
            if response.status == 404 and self._res.path.startswith("/apis/"):
                hint = " (CRD not installed? kubectl apply -f deploy/crds/)"
            if response.status == 410:
                raise GoneError(message)
            raise WatchError(f"GET {self._res.path}: HTTP {response.status}: {message}{hint}")
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise WatchError(f"GET {self._res.path}: expected a JSON object")
        return doc


def _interrupt(response: HttpResponse) -> None:
    """End a read another thread is blocked in, from this thread, without waiting:
    shut the connection's socket down (that takes no lock the reader holds; the
    read returns at once), then close the response on a daemon thread (closing
    waits for the reader's buffer lock)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close() -> None:
        with contextlib.suppress(Exception):  # best effort, from another thread
            response.close()

    threading.Thread(target=close, name="watch-close", daemon=True).start()


def _lines(response: HttpResponse) -> Iterator[bytes]:
    pending = b""
    for chunk in response.stream(None, decode_content=False):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class Watcher:
    """All reflectors of the extender."""

    def __init__(self, reflectors: list[Reflector]) -> None:
        self._reflectors = reflectors

    def start(self) -> None:
        for r in self._reflectors:
            r.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop every watch at once, then wait for them within ONE shared
        deadline. A watch blocked in a read that closing does not interrupt is
        a daemon thread: it does not hold the process's exit."""
        for r in self._reflectors:
            r.request_stop()
        deadline = time.monotonic() + timeout
        for r in self._reflectors:
            r.join(deadline - time.monotonic())


def kube_get(kubeconfig: str) -> ApiGet:
    """An ``ApiGet`` over the official client's configured HTTP session
    (auth, TLS and proxy settings from the kubeconfig or the service account)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    if kubeconfig:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()

    def get(
        path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> HttpResponse:
        try:
            method, url, headers, _, _ = api.param_serialize(
                "GET",
                path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = api.call_api(
                method, url, header_params=headers, _request_timeout=(10.0, timeout)
            )
        except ApiException as exc:
            body = exc.body or exc.reason or ""
            data = body if isinstance(body, bytes) else str(body).encode()
            return _Failed(int(exc.status or 0), data)
        raw = response.response  # the urllib3 response, body not read yet
        if not stream:
            raw.data  # noqa: B018 (read the whole body now)
        return raw  # type: ignore[no-any-return]

    return get


@dataclass(slots=True)
class _Failed:
    """A non-2xx answer, shaped like a response (the client raises instead)."""

    status: int
    data: bytes

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        yield self.data

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass
