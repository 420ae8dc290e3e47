"""The API front: authentication (TC3), versions, per-action rate limits,
fault injection, idempotency by ClientToken and dispatch to the actions.
``Api.handle`` takes the request headers and body and returns the HTTP status
and JSON body; it never raises."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vpcsim import describe, eips, inventory, signature, tasks, vpc_eni, vpc_ip
from vpcsim import security_groups as sgs
from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.faults import Faults
from vpcsim.ids import new_request_id
from vpcsim.ratelimits import PerActionAllowance
from vpcsim.world import Idem, World

log = logging.getLogger(__name__)

Handler = Callable[[Ctx, Mapping[str, Any]], dict[str, Any]]
VERSION = "2017-03-12"

ACTIONS: dict[str, dict[str, Handler]] = {
    "vpc": {
        "CreateNetworkInterface": vpc_eni.create,
        "AttachNetworkInterface": vpc_eni.attach,
        "DetachNetworkInterface": vpc_eni.detach,
        "DeleteNetworkInterface": vpc_eni.delete,
        "AssignPrivateIpAddresses": vpc_ip.assign,
        "UnassignPrivateIpAddresses": vpc_ip.unassign,
        "MigratePrivateIpAddress": vpc_ip.migrate,
        "DescribeNetworkInterfaces": describe.describe_enis,
        "DescribeNetworkInterfaceLimit": describe.eni_limit,
        "DescribeSubnets": describe.describe_subnets,
        "DescribeVpcTaskResult": describe.task_result,
        "DescribeVpcs": inventory.describe_vpcs,
        "DescribeSecurityGroups": inventory.describe_security_groups,
        "DescribeRouteTables": inventory.describe_route_tables,
        "CreateSecurityGroup": sgs.create_group,
        "DescribeSecurityGroupPolicies": sgs.describe_policies,
        "CreateSecurityGroupPolicies": sgs.create_policies,
        "DeleteSecurityGroupPolicies": sgs.delete_policies,
        "ModifySecurityGroupPolicies": sgs.modify_policies,
        "AssociateNetworkInterfaceSecurityGroups": sgs.associate_eni,
        "DisassociateNetworkInterfaceSecurityGroups": sgs.disassociate_eni,
        "AllocateAddresses": eips.allocate,
        "DescribeAddresses": eips.describe,
        "AssociateAddress": eips.associate,
        "DisassociateAddress": eips.disassociate,
        "ReleaseAddresses": eips.release,
        "DescribeAddressQuota": eips.quota,
        "DescribeTaskResult": eips.task_result,
    },
    "cvm": {
        "DescribeInstances": describe.describe_instances,
        "DescribeRegions": inventory.describe_regions,
        "DescribeZones": inventory.describe_zones,
        "ModifyInstancesAttribute": sgs.modify_instances,
    },
}
IDEMPOTENT = {
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "AssignPrivateIpAddresses",
    "AllocateAddresses",
}
WRITES = IDEMPOTENT | {
    "DeleteNetworkInterface",
    "UnassignPrivateIpAddresses",
    "MigratePrivateIpAddress",
    *sgs.WRITES,
    *eips.WRITES,
}


@dataclass
class Credential:
    secret_key: str
    token: str | None = None
    expires_at: float | None = None


class Api:
    def __init__(
        self,
        world: World,
        faults: Faults,
        credentials: dict[str, Credential],
        *,
        seed: int | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self.world = world
        self.faults = faults
        self.credentials = credentials
        self.rng = random.Random(seed)  # noqa: S311 - fault rolls, not crypto
        self.allowance = PerActionAllowance()
        self.on_write = on_write
        self.calls: dict[str, int] = {}
        self._stats_lock = threading.Lock()

    # --- envelope ---------------------------------------------------------------
    @staticmethod
    def _ok(request_id: str, payload: dict[str, Any]) -> tuple[int, bytes]:
        return 200, json.dumps({"Response": {**payload, "RequestId": request_id}}).encode()

    @staticmethod
    def _err(request_id: str, code: str, message: str) -> tuple[int, bytes]:
        body = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
        return 200, json.dumps(body).encode()

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        request_id = new_request_id()
        action = headers.get("x-tc-action", "")
        try:
            return self._handle(headers, body, request_id, action)
        except ServerFaultError as exc:
            return exc.status, b'{"message": "service unavailable (injected)"}'
        except ApiError as exc:
            return self._err(request_id, exc.code, exc.message)
        except signature.SignatureError as exc:
            return self._err(request_id, exc.code, exc.message)
        except Exception as exc:
            log.exception("emulator: %s crashed", action)
            return self._err(request_id, "InternalError", f"emulator error: {exc!r}")

    def _handle(
        self, headers: Mapping[str, str], body: bytes, request_id: str, action: str
    ) -> tuple[int, bytes]:
        with self._stats_lock:
            self.calls[action] = self.calls.get(action, 0) + 1
        if not action:
            raise ApiError("MissingParameter", "the header X-TC-Action is required")
        service = self._authenticate(headers, body)
        handlers = ACTIONS.get(service, {})
        handler = handlers.get(action)
        if handler is None:
            raise ApiError("InvalidAction", f"the action `{action}` of `{service}` does not exist")
        version = headers.get("x-tc-version", "")
        if version != VERSION:
            raise ApiError("NoSuchVersion", f"the version `{version}` of `{action}` does not exist")
        region = headers.get("x-tc-region", "")
        if not region:
            raise ApiError("MissingParameter", "the header X-TC-Region is required")
        if region != self.world.region:
            raise ApiError("UnsupportedRegion", f"region `{region}` is not served here")
        ctype = headers.get("content-type", "")
        if ctype.split(";")[0].strip() != "application/json":
            raise ApiError(
                "InvalidParameter", f"Content-Type {ctype!r} is not supported; use application/json"
            )
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(
                "InvalidParameter", f"the request body is not valid JSON: {exc}"
            ) from exc
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "the request body must be a JSON object")
        self._faults_before(action)
        with self.world.lock:
            tasks.advance(self.world)
            eips.advance(self.world)
            ctx = Ctx(self.world, request_id, self.faults, self.rng, action)
            token = params.get("ClientToken") if action in IDEMPOTENT else None
            if token is not None and not isinstance(token, str):
                raise ApiError("InvalidParameter", "the parameter `ClientToken` must be a string")
            if token:
                return self._idempotent(ctx, handler, params, token)
            payload = handler(ctx, params)
            response = self._ok(request_id, payload)
        if action in WRITES and self.on_write is not None:
            self.on_write()
        self._maybe_lose_reply(action)
        return response

    def _maybe_lose_reply(self, action: str) -> None:
        if self.faults.roll(self.faults.lost_reply_ratio, action, self.rng):
            raise ServerFaultError(503)

    def _idempotent(
        self, ctx: Ctx, handler: Handler, params: dict[str, Any], token: str
    ) -> tuple[int, bytes]:
        if len(token) > 64:
            raise ApiError("InvalidParameterValue.TooLong", "ClientToken exceeds 64 characters")
        key = f"{ctx.action}:{token}"
        rest = {k: v for k, v in params.items() if k != "ClientToken"}
        digest = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()
        seen = self.world.idempotency.get(key)
        if seen is not None:
            if seen.params_digest != digest:
                raise ApiError(
                    "UnsupportedOperation.IdempotentParameterMismatch",
                    f"ClientToken `{token}` was used with different parameters",
                )
            return 200, json.dumps({"Response": seen.response}).encode()
        payload = handler(ctx, params)
        response = {**payload, "RequestId": ctx.request_id}
        self.world.idempotency[key] = Idem(digest, response)
        if self.on_write is not None:
            self.on_write()
        self._maybe_lose_reply(ctx.action)
        return 200, json.dumps({"Response": response}).encode()

    def _authenticate(self, headers: Mapping[str, str], body: bytes) -> str:
        auth_header = headers.get("authorization", "")
        if not auth_header:
            raise ApiError(
                "AuthFailure.InvalidAuthorization", "the Authorization header is missing"
            )
        auth = signature.parse_authorization(auth_header)
        cred = self.credentials.get(auth.secret_id)
        if cred is None:
            raise ApiError("AuthFailure.SecretIdNotFound", f"SecretId `{auth.secret_id}` not found")
        if cred.token is not None:
            if headers.get("x-tc-token", "") != cred.token:
                raise ApiError("AuthFailure.TokenFailure", "the X-TC-Token does not match")
            if cred.expires_at is not None and time.time() > cred.expires_at:
                raise ApiError("AuthFailure.TokenFailure", "the temporary credential has expired")
        signature.verify(
            auth,
            cred.secret_key,
            host=headers.get("host", ""),
            content_type=headers.get("content-type", ""),
            body=body,
            timestamp_text=headers.get("x-tc-timestamp", ""),
        )
        return auth.service

    def _faults_before(self, action: str) -> None:
        f = self.faults
        delay_s = f.call_delay_s(action, self.rng)  # latency_ms + the profile's figure
        if delay_s > 0:
            time.sleep(delay_s)
        if f.roll(f.error_5xx_ratio, action, self.rng):
            raise ServerFaultError(503)
        if f.roll(f.throttle_ratio, action, self.rng):
            raise ApiError(f.throttle_code, f"request rate exceeded for `{action}` (injected)")
        if f.roll(f.internal_error_ratio, action, self.rng):
            raise ApiError("InternalError", f"internal error in `{action}` (injected)")
        if f.rate_limits and not self.allowance.admit(action):
            code = "RequestLimitExceeded"
            if action != "DescribeInstances":
                code = "LimitExceeded.ActionLimited"
            raise ApiError(code, f"`{action}` exceeded its rate limit")


class ServerFaultError(Exception):
    """Answer with a bare HTTP error status (an injected 5xx)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
