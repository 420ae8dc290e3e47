"""Errors of the cloud layer. The adapter turns every SDK exception into one of
these, with the API error code, the action and the request id kept."""

from __future__ import annotations


class CloudError(Exception):
    """A cloud API call failed. ``code`` is the API error code (e.g.
    ``ResourceInsufficient.Subnet``) or a local one (``ClientNetworkError``)."""

    def __init__(
        self, action: str, code: str, message: str, request_id: str | None = None
    ) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id
        rid = f" (request {request_id})" if request_id else ""
        super().__init__(f"{action} failed: {code}: {message}{rid}")

    @property
    def retryable(self) -> bool:
        return is_retryable(self.code)


class TaskFailedError(CloudError):
    """An asynchronous task (DescribeVpcTaskResult) ended FAILED; ``output`` is its output."""

    def __init__(
        self,
        action: str,
        code: str,
        message: str,
        request_id: str | None = None,
        output: str = "",
    ) -> None:
        super().__init__(action, code, message, request_id)
        self.output = output


class TaskTimeoutError(CloudError):
    """An asynchronous task was still RUNNING at the deadline (it may yet finish)."""


class NotFoundError(CloudError):
    """The resource does not exist (``ResourceNotFound`` and friends)."""


def is_not_found(code: str) -> bool:
    return code.startswith("ResourceNotFound") or code.endswith(".NotFound")


def is_throttle(code: str) -> bool:
    return code.startswith("RequestLimitExceeded") or code == "LimitExceeded.ActionLimited"


def is_retryable(code: str) -> bool:
    """Throttling, network errors and InternalError retry; quota, zone mismatch,
    not-found, invalid parameters and auth do not."""
    return (
        is_throttle(code)
        or code in ("ClientNetworkError", "ServerNetworkError", "InternalError")
        or code == "UnsupportedOperation.MutexOperationTaskRunning"
    )
