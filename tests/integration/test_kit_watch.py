"""kit.watch.ListWatch against the real kube-apiserver (the session control
plane), directly and through the test bed's apiserver fault proxy: events
reach the handlers, bookmarks are seen and followed, a 410 (a watch from a
version the apiserver no longer has, or an injected 410) lists again, failed
lists back off and recover, and stop() ends an open watch within its deadline.
Bounded waits only."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from kit.watch import (
    ApiGet,
    Handlers,
    HttpResponse,
    ListWatch,
    Timing,
    WatchError,
    api_get,
    object_key,
)
from localcluster.apifaults import rule
from localcluster.controlplane import ControlPlane
from localcluster.faultproxy import FaultProxy


class Cache:
    """A handler set keeping objects by key, recording what it was told."""

    def __init__(self) -> None:
        self.objs: dict[str, dict[str, Any]] = {}
        self.seen: list[tuple[str, str]] = []
        self.errors: list[WatchError] = []
        self.lock = threading.Lock()

    def handlers(self) -> Handlers:
        def put(kind: str) -> Callable[[dict[str, Any]], None]:
            def on(obj: dict[str, Any]) -> None:
                with self.lock:
                    self.seen.append((kind, object_key(obj)))
                    if kind == "deleted":
                        self.objs.pop(object_key(obj), None)
                    else:
                        self.objs[object_key(obj)] = obj

            return on

        def replace(items: list[dict[str, Any]]) -> None:
            with self.lock:
                self.seen.append(("replace", str(len(items))))
                self.objs = {object_key(o): o for o in items}

        return Handlers(
            replace=replace,
            added=put("added"),
            modified=put("modified"),
            deleted=put("deleted"),
            failed=self.errors.append,
        )

    def data(self, key: str) -> dict[str, str] | None:
        with self.lock:
            obj = self.objs.get(key)
        return None if obj is None else dict(obj.get("data") or {})


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.05)


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    api = config.new_client_from_config(str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    name = f"kitwatch-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)
        api.close()


def core_api(control_plane: ControlPlane) -> client.CoreV1Api:
    api = config.new_client_from_config(str(control_plane.kubeconfig))  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api)


def direct_get(control_plane: ControlPlane) -> ApiGet:
    return api_get(config.new_client_from_config(str(control_plane.kubeconfig)))  # type: ignore[no-untyped-call]


def configmap(name: str, value: str) -> Any:
    return {"metadata": {"name": name}, "data": {"v": value}}


def test_events_bookmarks_and_stop_within_deadline(
    control_plane: ControlPlane, namespace: str
) -> None:
    core = core_api(control_plane)
    core.create_namespaced_config_map(namespace, configmap("before", "1"))
    cache = Cache()
    lw = ListWatch(
        direct_get(control_plane),
        f"/api/v1/namespaces/{namespace}/configmaps",
        cache.handlers(),
        name="cm",
        params=[("fieldSelector", "metadata.name!=kube-root-ca.crt")],
        # short server-side watches: the apiserver sends a bookmark shortly
        # before a watch's timeout, and the loop resumes each from its version
        timing=Timing(watch_timeout=4, request_timeout=10),
    ).start()
    try:
        assert lw.synced.wait(30), "first list"
        assert cache.data(f"{namespace}/before") == {"v": "1"}
        core.create_namespaced_config_map(namespace, configmap("after", "a"))
        core.patch_namespaced_config_map("before", namespace, {"data": {"v": "2"}})
        core.delete_namespaced_config_map("after", namespace)
        wait_for("the three events", lambda: ("deleted", f"{namespace}/after") in cache.seen)
        assert cache.data(f"{namespace}/before") == {"v": "2"}
        assert [s for s in cache.seen if s[0] != "replace"] == [
            ("added", f"{namespace}/after"),
            ("modified", f"{namespace}/before"),
            ("deleted", f"{namespace}/after"),
        ]
        wait_for("a bookmark", lambda: lw.bookmarks >= 1, timeout=90)
        # resumed watches (after bookmarks and server-side timeouts) never relisted
        core.patch_namespaced_config_map("before", namespace, {"data": {"v": "3"}})
        wait_for(
            "the event after a bookmark", lambda: cache.data(f"{namespace}/before") == {"v": "3"}
        )
        assert lw.lists == 1 and lw.failures == 0 and not cache.errors
        # the loop is now blocked reading an open watch: stop() ends it within its deadline
        lw2 = ListWatch(
            direct_get(control_plane),
            f"/api/v1/namespaces/{namespace}/configmaps",
            Cache().handlers(),
            timing=Timing(watch_timeout=300, request_timeout=30),
        ).start()
        assert lw2.synced.wait(30)
        time.sleep(0.5)  # let it open its watch (not a timed assertion)
        assert lw2.stop(timeout=5.0), "an open watch did not stop within 5 s"
    finally:
        assert lw.stop(timeout=5.0), "stop() did not end the loop within 5 s"


def stale_first_watch(get: ApiGet) -> tuple[ApiGet, list[dict[str, str]]]:
    """Wraps ``get``: the first watch asks for resourceVersion 1 (long gone
    from the apiserver's watch window: it answers 410); records every query."""
    calls: list[dict[str, str]] = []
    done = threading.Event()

    def wrapped(
        path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> HttpResponse:
        q = dict(query)
        if q.get("watch") and not done.is_set():
            done.set()
            query = [(k, "1" if k == "resourceVersion" else v) for k, v in query]
            q = dict(query)
        calls.append(q)
        return get(path, query, stream=stream, timeout=timeout)

    return wrapped, calls


def test_relists_after_410_from_an_expired_version(
    control_plane: ControlPlane, namespace: str
) -> None:
    core = core_api(control_plane)
    for i in range(3):  # move the cluster's resourceVersion well past 1
        core.create_namespaced_config_map(namespace, configmap(f"cm{i}", str(i)))
    get, calls = stale_first_watch(direct_get(control_plane))
    cache = Cache()
    lw = ListWatch(
        get, f"/api/v1/namespaces/{namespace}/configmaps", cache.handlers(),
        timing=Timing(watch_timeout=30, request_timeout=10),
    ).start()
    try:
        wait_for("a second list after the 410", lambda: lw.lists >= 2)
        core.create_namespaced_config_map(namespace, configmap("late", "x"))
        wait_for(
            "the event after the relist", lambda: cache.data(f"{namespace}/late") == {"v": "x"}
        )
    finally:
        assert lw.stop(timeout=5.0)
    watches = [c for c in calls if c.get("watch")]
    assert watches[0]["resourceVersion"] == "1"
    assert watches[0]["allowWatchBookmarks"] == "true"
    assert "watch" not in calls[0] and "watch" not in calls[2]  # list, watch(410), list
    assert lw.failures == 0 and not cache.errors  # a 410 is not a failure: no backoff


@pytest.fixture
def proxy(control_plane: ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as p:
        yield p


def test_backoff_on_errors_and_injected_410_through_the_fault_proxy(
    control_plane: ControlPlane, namespace: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    kubeconfig = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "via-proxy.kubeconfig")
    get = api_get(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]
    core = core_api(control_plane)
    core.create_namespaced_config_map(namespace, configmap("one", "1"))
    proxy.set_rules(
        rule("error", 1.0, verbs="list", resources="configmaps", status=500, limit=3),
        rule("error", 1.0, verbs="watch", resources="configmaps", status=410, limit=1),
    )
    cache = Cache()
    lw = ListWatch(
        get, f"/api/v1/namespaces/{namespace}/configmaps", cache.handlers(),
        timing=Timing(watch_timeout=30, request_timeout=10, first_backoff=0.05, max_backoff=0.2),
    ).start()
    try:
        assert lw.synced.wait(60), "never listed after the injected errors"
        wait_for("the relist after the injected 410", lambda: lw.lists >= 2)
        core.create_namespaced_config_map(namespace, configmap("two", "2"))
        wait_for("an event after recovery", lambda: cache.data(f"{namespace}/two") == {"v": "2"})
    finally:
        assert lw.stop(timeout=5.0)
    assert lw.failures == 3
    assert [e.status for e in cache.errors] == [500, 500, 500]
    assert cache.data(f"{namespace}/one") == {"v": "1"}
