"""List+watch caches that keep only *summaries* of the objects (a slots
dataclass per object, built by a caller-supplied function), so ipamd stays
lean with 150,000 VpcIPs (a list is summarized page by page). The loop is
``kit.watch.ListWatch``: relists on 410 Gone and on any watch error, with
jittered backoff. Emits (key, old, new) changes to a handler; a write ipamd made is
fed back at once with ``apply`` (newer resourceVersion wins) so the next
decision never acts on a stale view of its own write."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from ipamd.kube.api import JSON, KubeApi
from kit.watch import Handlers, ListWatch, Timing, WatchError, api_get, object_key

log = logging.getLogger(__name__)

T = TypeVar("T")
TOMBSTONES = 10000
Handler = Callable[[str, "T | None", "T | None"], None]


def _rv(obj: JSON) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class Informer(Generic[T]):
    def __init__(
        self,
        api: KubeApi,
        path: str,
        name: str,
        summarize: Callable[[JSON], T | None],
        handler: Callable[[str, T | None, T | None], None] | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api
        self.path = path
        self.name = name
        self.summarize = summarize
        self.handler = handler
        self.label_selector = label_selector
        # server-side only: ``summarize`` must drop what it filters out too
        # (``_relist`` lists without it)
        self.field_selector = field_selector
        self.on_error = on_error
        self.synced = threading.Event()
        self._lock = threading.Lock()
        self._store: dict[str, T] = {}
        self._rvs: dict[str, int] = {}  # live keys only
        # deleted / not-of-interest keys, bounded: they only have to outlive late events
        self._tombs: OrderedDict[str, int] = OrderedDict()
        self._thread: threading.Thread | None = None
        self.watch: ListWatch | None = None

    # --- reads ---
    def get(self, key: str) -> T | None:
        with self._lock:
            return self._store.get(key)

    def items(self) -> list[tuple[str, T]]:
        with self._lock:
            return list(self._store.items())

    def values(self) -> list[T]:
        with self._lock:
            return list(self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    # --- writes fed back ---
    def apply(self, obj: JSON | None, *, deleted_key: str = "") -> None:
        """Feed an object ipamd just wrote (or a key it deleted) into the cache."""
        if obj is None:
            if deleted_key:
                with self._lock:
                    rv = max(self._rvs.get(deleted_key, 0), self._tombs.get(deleted_key, 0)) + 1
                self._change(deleted_key, None, rv)
            return
        self._change(object_key(obj), self.summarize(obj), _rv(obj))

    def _change(self, key: str, new: T | None, rv: int) -> None:
        """``new`` None: deleted (or no longer of interest); ``rv`` stays as a
        tombstone so a late, older event cannot resurrect the object."""
        with self._lock:
            if rv and rv < max(self._rvs.get(key, 0), self._tombs.get(key, 0)):
                return  # older than what we have
            old = self._store.get(key)
            if new is None:
                self._store.pop(key, None)
                self._rvs.pop(key, None)
                if rv:
                    self._tombs[key] = rv
                    self._tombs.move_to_end(key)
                    if len(self._tombs) > TOMBSTONES:
                        self._tombs.popitem(last=False)
            else:
                self._store[key] = new
                self._tombs.pop(key, None)
                if rv:
                    self._rvs[key] = rv
        if self.handler is not None and (old is not None or new is not None) and old != new:
            try:
                self.handler(key, old, new)
            except Exception:
                log.exception("%s: handler failed for %s", self.name, key)

    # --- loop ---
    def start(self, stop: threading.Event) -> None:
        """List+watch (``kit.watch``) on a daemon thread until ``stop`` is set."""
        handlers = Handlers(
            replace=self._replace,
            added=self._event,
            modified=self._event,
            deleted=lambda obj: self._change(object_key(obj), None, _rv(obj)),
            failed=self._failed,
        )
        params = [("labelSelector", self.label_selector)] if self.label_selector else []
        if self.field_selector:
            params.append(("fieldSelector", self.field_selector))
        lw = ListWatch(
            api_get(self.api.api_client),
            self.path,
            handlers,
            name=self.name,
            params=params,
            prepare=self._prepare,
            timing=Timing(request_timeout=120.0, first_backoff=0.2, max_backoff=10.0),
        )
        self.watch = lw
        lw.synced = self.synced
        lw.start()

        def stop_on_signal() -> None:
            stop.wait()
            lw.request_stop()

        self._thread = threading.Thread(
            target=stop_on_signal, name=f"informer-{self.name}-stop", daemon=True
        )
        self._thread.start()

    def _prepare(self, obj: JSON) -> tuple[str, T, int] | None:
        summary = self.summarize(obj)
        return None if summary is None else (object_key(obj), summary, _rv(obj))

    def _relist(self) -> str:
        """One complete list through ``KubeApi.list_pages``, outside the loop
        (the model tests deliver changes this way); the list's resourceVersion.
        The field selector is not sent (``summarize`` applies the same filter)."""
        listed: list[tuple[str, T, int]] = []
        rv = ""
        for items, page_rv in self.api.list_pages(self.path, label_selector=self.label_selector):
            rv = page_rv or rv
            listed.extend(p for obj in items if (p := self._prepare(obj)) is not None)
        self._replace(listed)
        return rv

    def _replace(self, listed: list[tuple[str, T, int]]) -> None:
        seen = {key: (summary, rv) for key, summary, rv in listed}
        with self._lock:
            gone = [k for k in self._store if k not in seen]
            self._rvs = {k: v for k, v in self._rvs.items() if k in seen}
        for key in gone:
            self._change(key, None, 0)
        for key, (summary, orv) in seen.items():
            self._change(key, summary, orv)

    def _event(self, obj: JSON) -> None:
        self._change(object_key(obj), self.summarize(obj), _rv(obj))

    def _failed(self, exc: WatchError) -> None:
        if self.on_error is not None:
            self.on_error(str(exc))
