"""The error an emulated action raises; the server turns it into the API's
error envelope (HTTP 200, ``{"Response": {"Error": {...}, "RequestId": ...}}``)."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def not_found(kind: str, value: str) -> ApiError:
    return ApiError("ResourceNotFound", f"the {kind} `{value}` does not exist")


def malformed(field: str, value: object) -> ApiError:
    return ApiError(
        "InvalidParameterValue.Malformed",
        f"the value `{value}` of parameter `{field}` is malformed",
    )
