"""Plain-JSON HTTP for the kit's list+watch loop: the one GET call it makes
(``ApiGet``) over a ``kubernetes.client.ApiClient`` (its auth, TLS and proxy
settings), reading a watch stream line by line, and ending a blocked read from
another thread."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class HttpResponse(Protocol):
    status: int
    data: bytes

    def stream(
        self, amt: int | None = ..., decode_content: bool | None = ...
    ) -> Iterator[bytes]: ...

    def release_conn(self) -> None: ...

    def close(self) -> None: ...


class ApiGet(Protocol):
    """The one call the loop makes: GET a path with query parameters; a
    non-2xx answer is returned (not raised) with its body in ``data``."""

    def __call__(
        self, path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> HttpResponse: ...


def api_get(api_client: Any) -> ApiGet:
    """An ``ApiGet`` over a ``kubernetes.client.ApiClient`` (its auth, TLS and
    proxy settings), returning the raw urllib3 response."""
    from kubernetes.client.exceptions import ApiException

    def get(
        path: str, query: list[tuple[str, str]], *, stream: bool, timeout: float
    ) -> HttpResponse:
        try:
            method, url, headers, _, _ = api_client.param_serialize(
                "GET",
                path,
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            response = api_client.call_api(
                method,
                url,
                header_params=headers,
                _request_timeout=(min(timeout, 10.0), timeout),
            )
        except ApiException as exc:
            body = exc.body or exc.reason or ""
            data = body if isinstance(body, bytes) else str(body).encode()
            return Answer(int(exc.status or 0), data)
        raw = response.response  # the urllib3 response, body not read yet
        if not stream:
            raw.data  # noqa: B018 - read the whole body now
        return raw  # type: ignore[no-any-return]

    return get


@dataclass(slots=True)
class Answer:
    """A whole answer read already, shaped as an ``HttpResponse``: a non-2xx
    answer here (the client raises one instead), any answer in ``kit.kubelite``."""

    status: int
    data: bytes

    def stream(self, amt: int | None = None, decode_content: bool | None = None) -> Iterator[bytes]:
        yield self.data

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


def interrupt(response: HttpResponse) -> None:
    """End a read another thread is blocked in, from this thread, without
    waiting: shut the connection's socket down (that takes no lock the reader
    holds; the read returns at once), then close the response on a daemon
    thread (closing waits for the reader's buffer lock)."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close() -> None:
        with contextlib.suppress(Exception):  # best effort, from another thread
            response.close()

    threading.Thread(target=close, name="watch-close", daemon=True).start()


def lines(response: HttpResponse) -> Iterator[bytes]:
    pending = b""
    for chunk in response.stream(None, decode_content=False):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield line
    if pending.strip():
        yield pending
