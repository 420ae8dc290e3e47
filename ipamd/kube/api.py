"""A thin JSON client over the ``kubernetes`` package's ApiClient: raw dicts
in and out (no generated models: memory-lean for 150,000 objects) and paged
lists; watches go through the kit's loop (``kit.watch``) over ``api_client``."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """An API request failed; ``status`` is the HTTP status (0: no reply)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410


def load_configuration(kubeconfig: str = "") -> k8s.Configuration:
    cfg = k8s.Configuration()
    if kubeconfig:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=cfg
        )
    else:
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


class KubeApi:
    def __init__(self, configuration: k8s.Configuration, *, timeout: float = 30.0) -> None:
        configuration.connection_pool_maxsize = max(
            getattr(configuration, "connection_pool_maxsize", 4) or 4, 32
        )
        self._client = k8s.ApiClient(configuration)
        self._timeout = timeout

    def without_retries(self) -> KubeApi:
        """A client on its own connection pool whose requests are never retried
        by urllib3 (which retries an idempotent request that timed out, so a
        caller's timeout could be spent several times over)."""
        cfg = copy.deepcopy(self._client.configuration)
        cfg.retries = False
        return KubeApi(cfg, timeout=self._timeout)

    @property
    def api_client(self) -> k8s.ApiClient:
        """The underlying client (``kit.watch`` streams its watches over it)."""
        return self._client

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: Any = None,
        stream: bool = False,
    ) -> Any:
        """``timeout``: seconds for the whole request (None: the client's default)."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, hdrs, body_s, _ = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._client.call_api(
                method,
                url,
                header_params=hdrs,
                body=body_s,
                _request_timeout=timeout if timeout is not None else self._timeout,
            )
        except k8s.ApiException as exc:
            raise KubeError(method, path, exc.status or 0, str(exc.reason)) from exc
        except Exception as exc:  # urllib3 errors: connection refused, timeouts
            raise KubeError(method, path, 0, f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= resp.status < 300:
            data = resp.read()  # type: ignore[no-untyped-call]
            message = data.decode(errors="replace") if data else resp.reason
            with contextlib.suppress(ValueError, AttributeError):
                message = json.loads(message).get("message", message)
            raise KubeError(method, path, resp.status, str(message))
        if stream:
            return resp.response
        data = resp.read()  # type: ignore[no-untyped-call]
        return json.loads(data) if data else {}

    # --- verbs ---
    def get(self, path: str, *, timeout: float | None = None) -> JSON:
        result: JSON = self._call("GET", path, timeout=timeout)
        return result

    def get_or_none(self, path: str, *, timeout: float | None = None) -> JSON | None:
        try:
            return self.get(path, timeout=timeout)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    def list_pages(
        self, path: str, *, label_selector: str = "", page: int = 500
    ) -> Iterator[tuple[list[JSON], str]]:
        """(items, resourceVersion) per page."""
        cont = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", page)]
            if cont:
                query.append(("continue", cont))
            if label_selector:
                query.append(("labelSelector", label_selector))
            data = self._call("GET", path, query=query, timeout=120)
            meta = data.get("metadata") or {}
            yield data.get("items") or [], str(meta.get("resourceVersion", ""))
            cont = meta.get("continue") or ""
            if not cont:
                return

    def create(self, path: str, body: JSON, *, timeout: float | None = None) -> JSON:
        result: JSON = self._call("POST", path, body=body, timeout=timeout)
        return result

    def replace(self, path: str, body: JSON, *, timeout: float | None = None) -> JSON:
        result: JSON = self._call("PUT", path, body=body, timeout=timeout)
        return result

    def patch(self, path: str, body: JSON) -> JSON:
        """JSON merge patch (RFC 7386)."""
        result: JSON = self._call("PATCH", path, body=body, content_type=MERGE_PATCH)
        return result

    def patch_strategic(self, path: str, body: JSON) -> JSON:
        result: JSON = self._call(
            "PATCH", path, body=body, content_type="application/strategic-merge-patch+json"
        )
        return result

    def delete(self, path: str, *, precondition_uid: str = "") -> JSON | None:
        body = {"preconditions": {"uid": precondition_uid}} if precondition_uid else None
        try:
            result: JSON = self._call("DELETE", path, body=body)
            return result
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
