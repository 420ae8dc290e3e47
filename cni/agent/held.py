"""What the API holds of this node's usage (``VpcIP.status``), for sources
that can tell without an extra request (the Kubernetes source's watch
cache, the file source's status file): the reporter's full pass compares
with it and the state rebuild takes the pods' names from it."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class HeldUsage(Protocol):
    def held(self) -> dict[str, dict[str, Any]]:
        """ip -> the status the API holds now (``VpcIP.status`` field names)."""
        ...


def held_status(source: object) -> dict[str, dict[str, Any]] | None:
    """The source's held statuses; None when it cannot tell."""
    return source.held() if isinstance(source, HeldUsage) else None
