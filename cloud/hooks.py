"""What a daemon plugs into the cloud adapter (``TencentCloud(hooks=...)``):
a check before each write request, and the outcome of each request once the
adapter's retries are over. ipamd fences its writes on leadership and counts
calls with them; the default does nothing."""

from __future__ import annotations

from typing import Protocol

from cloud.errors import CloudError


class CallHooks(Protocol):
    def before_write(self, action: str) -> None:
        """Called before every attempt of a write request; raise a
        ``CloudError`` (not retryable) to refuse it: nothing is sent."""
        ...

    def after_call(self, action: str, error: CloudError | None) -> None:
        """Called once per request after its last attempt (``error`` None: it
        succeeded, or a gone resource counted as done)."""
        ...


class NoHooks:
    def before_write(self, action: str) -> None:
        return None

    def after_call(self, action: str, error: CloudError | None) -> None:
        return None
