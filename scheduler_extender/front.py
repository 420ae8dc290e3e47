"""The verbs' WSGI front: a POST to the filter or prioritize path is answered
here, straight from the WSGI environ; every other request goes to the Flask
app (health, readiness, metrics, 404/405 answers).

Why: the verbs are on kube-scheduler's critical path (its scheduling cycle
waits for both calls, pod after pod). Flask's request context, routing and
``Response`` object cost about as much as deciding 200 nodes; the reply here
is the same bytes, status line and headers Flask would send (JSON body,
``Content-Type: application/json``, ``Content-Length``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES

JSON = "application/json"

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A verb's answer: status, JSON body, and what to run once it is sent."""

    status: int
    body: bytes
    after: Callable[[], None] | None = None


Verb = Callable[[dict[str, Any]], Reply]


def status_line(code: int) -> str:
    """The status line werkzeug writes (e.g. ``413 REQUEST ENTITY TOO LARGE``)."""
    return f"{code} {HTTP_STATUS_CODES.get(code, 'UNKNOWN').upper()}"


class _Closing:
    """The body, and ``after`` run when the server closes the response."""

    __slots__ = ("_after", "_body")

    def __init__(self, body: bytes, after: Callable[[], None]) -> None:
        self._body = body
        self._after = after

    def __iter__(self) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        self._after()


class VerbFront:
    """WSGI: ``POST <path>`` of ``verbs`` answered directly, the rest by ``inner``."""

    def __init__(self, inner: WSGIApp, verbs: dict[str, Verb]) -> None:
        self.inner = inner
        self.verbs = verbs
        self._status = {code: status_line(code) for code in (200, 400, 413, 500)}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        verb = self.verbs.get(environ.get("PATH_INFO", "")) if (
            environ.get("REQUEST_METHOD") == "POST") else None
        if verb is None:
            return self.inner(environ, start_response)
        reply = verb(environ)
        status = self._status.get(reply.status) or status_line(reply.status)
        start_response(
            status, [("Content-Type", JSON), ("Content-Length", str(len(reply.body)))]
        )
        if reply.after is None:
            return [reply.body]
        return _Closing(reply.body, reply.after)
