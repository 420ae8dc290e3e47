"""The AdmissionReview wire format (``admission.k8s.io/v1``): parse a request
the API server sends, build the response it expects.

Every malformed input is a :class:`ReviewError` with a message naming the
field and what was wrong, never an exception of another kind. When the
request's ``uid`` could be read the error carries it, so the answer is a
well-formed AdmissionReview the API server can match (``allowed: false``
with the message); otherwise the caller answers HTTP 400.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
PATCH_TYPE = "JSONPatch"
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ReviewError(ValueError):
    """A malformed AdmissionReview. ``uid``: the request's uid when it was readable."""

    def __init__(self, message: str, uid: str = "") -> None:
        super().__init__(message)
        self.uid = uid


@dataclass(frozen=True, slots=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str

    def __str__(self) -> str:
        gv = f"{self.group}/{self.version}" if self.group else self.version
        return f"{gv}, Kind={self.kind}"


@dataclass(frozen=True, slots=True)
class Request:
    """The fields of ``request`` the webhook uses (the rest is ignored)."""

    uid: str
    kind: GroupVersionKind
    resource: str  # plural, e.g. "pods"
    sub_resource: str
    namespace: str
    name: str
    operation: str
    obj: Mapping[str, Any]
    dry_run: bool = False
    user: str = ""


@dataclass(frozen=True, slots=True)
class Response:
    uid: str
    allowed: bool = True
    patch: Sequence[Mapping[str, Any]] = ()
    warnings: Sequence[str] = ()
    code: int = 0  # with allowed=False: the HTTP-like status code shown to the user
    message: str = ""
    audit: Mapping[str, str] = field(default_factory=dict)


def _text(obj: Mapping[str, Any], key: str, where: str, uid: str, *, required: bool) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise ReviewError(f"{where}.{key} is missing", uid)
        return ""
    if not isinstance(value, str):
        raise ReviewError(f"{where}.{key}: expected a string, got {_type(value)}", uid)
    return value


def _type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "null"}.get(type(value),
                                                                       type(value).__name__)


def _gvk(obj: Mapping[str, Any], uid: str) -> GroupVersionKind:
    raw = obj.get("kind")
    if not isinstance(raw, dict):
        raise ReviewError(f"request.kind: expected an object {{group, version, kind}}, "
                          f"got {_type(raw)}", uid)
    return GroupVersionKind(
        _text(raw, "group", "request.kind", uid, required=False),
        _text(raw, "version", "request.kind", uid, required=True),
        _text(raw, "kind", "request.kind", uid, required=True),
    )


def _load(body: bytes) -> dict[str, Any]:
    if not body:
        raise ReviewError("empty request body: expected an AdmissionReview (admission.k8s.io/v1)")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReviewError(f"request body is not JSON: {exc}") from None
    except RecursionError:
        raise ReviewError("request body is not JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ReviewError(f"AdmissionReview: expected a JSON object, got {_type(doc)}")
    return doc


def parse(body: bytes) -> Request:
    """The request of an AdmissionReview body. Raises :class:`ReviewError`."""
    doc = _load(body)
    req = doc.get("request")
    uid = ""
    if isinstance(req, dict) and isinstance(req.get("uid"), str):
        uid = req["uid"]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if kind != KIND:
        raise ReviewError(f"kind: expected {KIND!r}, got {kind!r}", uid)
    if api_version != API_VERSION:
        raise ReviewError(
            f"apiVersion: expected {API_VERSION!r}, got {api_version!r} (the webhook "
            f"configuration must list admissionReviewVersions: [v1])", uid)
    if not isinstance(req, dict):
        raise ReviewError(f"request: expected an object, got {_type(req)}", uid)
    if not uid:
        raise ReviewError("request.uid is missing or not a string (a non-empty string)")
    operation = _text(req, "operation", "request", uid, required=True)
    if operation not in OPERATIONS:
        raise ReviewError(f"request.operation: {operation!r} is not one of "
                          f"{', '.join(OPERATIONS)}", uid)
    resource = req.get("resource")
    if not isinstance(resource, dict):
        raise ReviewError(f"request.resource: expected an object, got {_type(resource)}", uid)
    obj = req.get("object")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, dict):
        raise ReviewError(f"request.object: expected the {operation}d object, got {_type(obj)}",
                          uid)
    dry_run = req.get("dryRun", False)
    if not isinstance(dry_run, bool) and dry_run is not None:
        raise ReviewError(f"request.dryRun: expected a boolean, got {_type(dry_run)}", uid)
    user = req.get("userInfo")
    return Request(
        uid=uid,
        kind=_gvk(req, uid),
        resource=_text(resource, "resource", "request.resource", uid, required=True),
        sub_resource=_text(req, "subResource", "request", uid, required=False),
        namespace=_text(req, "namespace", "request", uid, required=False),
        name=_text(req, "name", "request", uid, required=False),
        operation=operation,
        obj=obj if isinstance(obj, dict) else {},
        dry_run=bool(dry_run),
        user=str(user.get("username", "")) if isinstance(user, dict) else "",
    )


def encode(resp: Response) -> bytes:
    """The AdmissionReview answer for ``resp``."""
    out: dict[str, Any] = {"uid": resp.uid, "allowed": resp.allowed}
    if resp.patch:
        out["patchType"] = PATCH_TYPE
        out["patch"] = base64.b64encode(
            json.dumps(list(resp.patch), separators=(",", ":")).encode()
        ).decode()
    if resp.warnings:
        out["warnings"] = list(resp.warnings)
    if not resp.allowed:
        out["status"] = {"code": resp.code or 400, "status": "Failure", "message": resp.message}
    if resp.audit:
        out["auditAnnotations"] = dict(resp.audit)
    review = {"apiVersion": API_VERSION, "kind": KIND, "response": out}
    return json.dumps(review, separators=(",", ":")).encode()


def error_response(err: ReviewError) -> Response:
    """A refusal that names the problem (for a request whose uid was readable)."""
    return Response(uid=err.uid, allowed=False, code=400,
                    message=f"tke-eni-ip-webhook: malformed AdmissionReview: {err}")
