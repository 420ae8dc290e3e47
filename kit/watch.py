"""One robust list+watch loop over the ``kubernetes`` client, for every daemon.

Plain JSON (no generated models: a 150,000-object list costs one
``json.loads`` per page). The loop lists (paged), hands the complete set to
``Handlers.replace``, signals ``synced``, then watches from the list's
resourceVersion with bookmarks, following every event's (and bookmark's)
resourceVersion. A watch that ends (its ``timeoutSeconds``) is resumed from
the last version; 410 Gone (too old a version, e.g. after compaction) lists
again at once; any other failure (HTTP error, dropped connection, bad JSON)
calls ``Handlers.failed`` and lists again after a capped, jittered,
exponential backoff. The cache the handlers keep is never cleared by a
failure. ``stop()`` returns within its deadline: it ends an open watch by
shutting its socket down, and every request has a read timeout."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kit.kubehttp import ApiGet, HttpResponse, api_get, interrupt, lines

__all__ = [
    "ApiGet",
    "GoneError",
    "Handlers",
    "HttpResponse",
    "ListWatch",
    "Timing",
    "WatchError",
    "api_get",
    "backoff_delay",
    "object_key",
    "stop_all",
]

log = logging.getLogger(__name__)

JSON = dict[str, Any]
EVENT_TYPES = ("ADDED", "MODIFIED", "DELETED")


class WatchError(RuntimeError):
    """A list or watch failed; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class GoneError(WatchError):
    """410: the resourceVersion is too old; list again."""


def _ignore(_: Any) -> None:
    return None


@dataclass(slots=True)
class Handlers:
    """What the loop calls, all on its thread. ``replace``: the complete set
    after each (re)list (the handler drops what is not in it), each listed
    object passed through ``ListWatch(prepare=...)`` as its page arrives (so a
    caller that keeps summaries never holds the whole raw list); ``added`` /
    ``modified`` / ``deleted``: one watch event's object; ``failed``: a list or
    watch failed (not a 410), the loop backs off and lists again."""

    replace: Callable[[list[Any]], None]
    added: Callable[[JSON], None]
    modified: Callable[[JSON], None]
    deleted: Callable[[JSON], None]
    failed: Callable[[WatchError], None] = field(default=_ignore)


@dataclass(frozen=True, slots=True)
class Timing:
    """``watch_timeout``: the server ends each watch after this many seconds
    (then it is resumed); ``request_timeout``: read timeout of a list page and
    connect timeout of a watch; a watch's read timeout is ``watch_timeout``
    plus ``request_timeout``. Backoff: ``first_backoff`` doubling to
    ``max_backoff``, each wait drawn between half and all of it."""

    watch_timeout: int = 300
    request_timeout: float = 30.0
    first_backoff: float = 0.5
    max_backoff: float = 30.0
    page_size: int = 500


def backoff_delay(
    failures: int, timing: Timing, rand: Callable[[], float] = random.random
) -> float:
    """The wait after ``failures`` consecutive failures (1, 2, ...)."""
    doubled: float = timing.first_backoff * 2.0 ** min(max(failures - 1, 0), 20)
    cap = min(timing.max_backoff, doubled)
    return cap * (0.5 + rand() / 2)


class ListWatch:
    """Keeps one collection (``path`` with ``params``: label/field selectors)
    in step through ``handlers``; one daemon thread."""

    def __init__(
        self,
        get: ApiGet,
        path: str,
        handlers: Handlers,
        *,
        name: str = "",
        params: Sequence[tuple[str, str]] = (),
        keep: Callable[[JSON], bool] | None = None,
        prepare: Callable[[JSON], Any] | None = None,
        timing: Timing = Timing(),
    ) -> None:
        self.get = get
        self.path = path
        self.handlers = handlers
        self.name = name or path
        self.params = list(params)
        self.keep = keep
        self.prepare = prepare
        self.timing = timing
        self.synced = threading.Event()  # set after the first complete list
        self.version = ""  # the last resourceVersion seen
        self.lists = 0  # complete lists done (the first one and every relist)
        self.bookmarks = 0  # bookmark events seen
        self.failures = 0  # failed lists/watches (not 410s), in total
        self._stop = threading.Event()
        self._response: HttpResponse | None = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)

    # --- lifecycle ---
    def start(self) -> ListWatch:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and wait up to ``timeout``; True when the thread has ended."""
        self.request_stop()
        self.join(timeout)
        return not self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the thread to end, and end its open watch, without waiting."""
        self._stop.set()
        response = self._response
        if response is not None:
            interrupt(response)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(max(0.0, timeout))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- loop ---
    def _run(self) -> None:
        streak = 0
        while not self._stop.is_set():
            try:
                self.version = self._list()
                streak = 0
                while not self._stop.is_set():
                    self._watch()
            except GoneError as exc:
                log.info(
                    "watch expired (410), listing again",
                    extra={"watch": self.name, "error": str(exc)[:200]},
                )
            except Exception as exc:  # noqa: BLE001 - keep the loop alive whatever broke
                if self._stop.is_set():
                    break
                streak += 1
                self.failures += 1
                err = exc if isinstance(exc, WatchError) else WatchError(_describe(exc))
                delay = backoff_delay(streak, self.timing)
                log.warning(
                    "list/watch failed, cache kept, retrying",
                    extra={
                        "watch": self.name,
                        "path": self.path,
                        "error": str(err)[:500],
                        "retry_in": round(delay, 2),
                    },
                )
                try:
                    self.handlers.failed(err)
                except Exception:
                    log.exception("failure handler raised", extra={"watch": self.name})
                self._stop.wait(delay)

    def _list(self) -> str:
        items: list[Any] = []
        prepare = self.prepare
        token = ""
        while True:
            query = [("limit", str(self.timing.page_size)), *self.params]
            if token:
                query.append(("continue", token))
            response = self.get(
                self.path, query, stream=False, timeout=self.timing.request_timeout
            )
            page = self._doc(response)
            for obj in page.get("items") or []:
                if isinstance(obj, dict) and self._kept(obj):
                    item = obj if prepare is None else prepare(obj)
                    if item is not None:
                        items.append(item)
            meta = page.get("metadata") or {}
            del page, response  # the raw page goes before the next one arrives
            token = meta.get("continue") or ""
            if not token:
                version = str(meta.get("resourceVersion") or "")
                break
            if self._stop.is_set():
                raise WatchError("stopped while listing")
        self.handlers.replace(items)
        self.lists += 1
        self.synced.set()
        log.info("listed", extra={"watch": self.name, "objects": len(items), "version": version})
        return version

    def _watch(self) -> None:
        t = self.timing
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(t.watch_timeout)),
            *self.params,
        ]
        if self.version:
            query.append(("resourceVersion", self.version))
        timeout = t.watch_timeout + t.request_timeout
        response = self.get(self.path, query, stream=True, timeout=timeout)
        if response.status != 200:
            self._doc(response)  # raises with the server's message
        self._response = response
        try:
            if self._stop.is_set():
                return
            for line in lines(response):
                self._event(line)
                if self._stop.is_set():
                    return
        finally:
            self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()

    def _event(self, line: bytes) -> None:
        try:
            ev = json.loads(line)
        except ValueError as exc:
            raise WatchError(f"watch {self.path}: bad event: {line[:200]!r}") from exc
        kind, obj = ev.get("type"), ev.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            message = f"watch {self.path}: {code} {obj.get('reason', '')}: {obj.get('message', '')}"
            raise GoneError(message, 410) if code == 410 else WatchError(message, code)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.version = str(version)
        if kind == "BOOKMARK":
            self.bookmarks += 1
            return
        if kind not in EVENT_TYPES or not self._kept(obj):
            return
        handler = {
            "ADDED": self.handlers.added,
            "MODIFIED": self.handlers.modified,
            "DELETED": self.handlers.deleted,
        }[kind]
        handler(obj)

    def _kept(self, obj: JSON) -> bool:
        return self.keep is None or self.keep(obj)

    def _doc(self, response: HttpResponse) -> JSON:
        data = response.data
        if response.status != 200:
            try:
                message = str(json.loads(data).get("message", ""))
            except (ValueError, AttributeError):
                message = data[:200].decode(errors="replace")
            hint = ""
            if response.status == 404 and self.path.startswith("/apis/"):
                hint = " (CRD not installed? kubectl apply -f deploy/crds/)"
            text = f"GET {self.path}: HTTP {response.status}: {message}{hint}"
            if response.status == 410:
                raise GoneError(text, 410)
            raise WatchError(text, response.status)
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise WatchError(f"GET {self.path}: not JSON: {data[:200]!r}") from exc
        if not isinstance(doc, dict):
            raise WatchError(f"GET {self.path}: expected a JSON object")
        return doc


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def stop_all(watches: Sequence[ListWatch], timeout: float = 5.0) -> bool:
    """Stop every watch at once, then wait for them within ONE shared deadline."""
    for w in watches:
        w.request_stop()
    deadline = time.monotonic() + timeout
    for w in watches:
        w.join(deadline - time.monotonic())
    return all(not w.alive for w in watches)


def object_key(obj: JSON) -> str:
    """``namespace/name`` (just ``name`` for a cluster-scoped object)."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    name = str(meta.get("name", ""))
    return f"{ns}/{name}" if ns else name
