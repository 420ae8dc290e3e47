"""``TencentCloud``: the ``cloud.ports.CloudApi`` implementation over the
official SDK (through ``sdk_transport``). Client-side rate limit per action,
retries with backoff and jitter for what can succeed later, ClientTokens for
idempotent writes, and every write waits for its async task.

Done here once for every caller: at most 10 IPs per call (larger requests are
split), the cluster and creator tags on every ENI created, and "already gone"
counted as done when the caller asks for it (``gone_ok`` of delete, detach,
unassign). Metrics go to the registry the daemon gives (``registry=``); a
daemon's ``CallHooks`` see each write before it is sent and each request's
outcome (ipamd: its leader fence and call counts)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from cloud import mapping
from cloud.backoff import retry_call
from cloud.credentials import provider_for
from cloud.eips import EipCalls
from cloud.errors import CloudError, NotFoundError, TaskFailedError, TaskTimeoutError, is_not_found
from cloud.hooks import CallHooks, NoHooks
from cloud.metrics import CloudMetrics
from cloud.models import Eni, Instance, PrivateIp, Subnet
from cloud.ratelimit import API_RATE_LIMITS, ActionLimiter
from cloud.sdk_transport import SdkTransport, Transport
from cloud.security_groups import SecurityGroupCalls
from cloud.settings import CloudSettings
from core.ids import EniId, InstanceId, SubnetId, VpcId
from core.limits import EniLimits
from core.names import TAG_CLUSTER_ID, TAG_CREATOR, TAG_INSTANCE_ID

log = logging.getLogger(__name__)
MAX_IDS = 100
PAGE = 100
MAX_IPS_PER_CALL = 10

SERVICE = {"DescribeInstances": "cvm"}


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _gone(exc: CloudError) -> bool:
    """The ENI or the address does not exist (any more)."""
    return isinstance(exc, NotFoundError) or is_not_found(exc.code)


def _gone_or_busy(exc: CloudError) -> bool:
    """Unassign: gone, or the ENI no longer in a state to hold addresses."""
    return _gone(exc) or exc.code == "UnsupportedOperation.InvalidState"


def _not_attached(exc: CloudError) -> bool:
    """Detach: gone, or refused because it is not attached (there)."""
    return _gone(exc) or exc.code.startswith("UnsupportedOperation")


class TencentCloud(SecurityGroupCalls, EipCalls):
    def __init__(
        self,
        settings: CloudSettings,
        transport: Transport,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        metrics: CloudMetrics | None = None,
        hooks: CallHooks | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.metrics = metrics or CloudMetrics.into(None)
        self.hooks: CallHooks = hooks or NoHooks()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        rates = {a: r * settings.rate_fraction for a, r in API_RATE_LIMITS.items()}
        rates.update(settings.rate_overrides)
        self.limiter = ActionLimiter(rates, default_rate=10, clock=clock, sleep=sleep)

    @classmethod
    def from_settings(
        cls,
        settings: CloudSettings,
        *,
        registry: CollectorRegistry | None = None,
        hooks: CallHooks | None = None,
    ) -> TencentCloud:
        """The adapter over the SDK; its metrics go into ``registry`` (the one
        the daemon serves; None: a private one)."""
        log.info("cloud settings %s", settings.redacted())
        return cls(
            settings,
            SdkTransport(settings, provider_for(settings)),
            metrics=CloudMetrics.into(registry),
            hooks=hooks,
        )

    # --- one call: fence, limiter, retries, error classes, metrics -----------------
    def _send(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request on the wire, counted and timed."""
        m = self.metrics
        waited = self.limiter.acquire(action)
        if waited:
            m.throttle_wait.labels(action).inc(waited)
        m.calls.labels(action).inc()
        start = time.perf_counter()
        try:
            return self.transport.call(service, action, params)
        except CloudError as exc:
            m.errors.labels(action, exc.code).inc()
            raise
        finally:
            m.latency.labels(action).observe(time.perf_counter() - start)

    def _call(
        self,
        action: str,
        params: dict[str, Any],
        *,
        write: bool = False,
        gone_ok_on_retry: bool = False,
    ) -> dict[str, Any]:
        try:
            reply = self._retried(action, params, write=write, gone_ok_on_retry=gone_ok_on_retry)
        except CloudError as exc:
            self.hooks.after_call(action, exc)
            raise
        self.hooks.after_call(action, None)
        return reply

    def _retried(
        self, action: str, params: dict[str, Any], *, write: bool, gone_ok_on_retry: bool
    ) -> dict[str, Any]:
        service = SERVICE.get(action, "vpc")
        state = {"ambiguous": False}

        def once(attempt: int) -> dict[str, Any]:
            if write:
                self.hooks.before_write(action)  # e.g. ipamd's leader fence: may refuse
            try:
                return self._send(service, action, params)
            except CloudError as exc:
                if gone_ok_on_retry and state["ambiguous"] and is_not_found(exc.code):
                    return {}  # an earlier attempt did it, its reply was lost
                if exc.code in ("ClientNetworkError", "ServerNetworkError", "InternalError"):
                    state["ambiguous"] = True
                raise

        def on_retry(exc: CloudError, attempt: int, delay: float) -> None:
            self.metrics.retries.labels(action, exc.code).inc()
            log.warning(
                "cloud %s attempt %d failed (%s); retrying in %.2fs",
                action,
                attempt,
                exc.code,
                delay,
            )

        try:
            return retry_call(
                once,
                max_attempts=self.settings.max_attempts,
                base_s=self.settings.backoff_base_s,
                cap_s=self.settings.backoff_max_s,
                sleep=self._sleep,
                rng=self._rng,
                on_retry=on_retry,
            )
        except CloudError as exc:
            if is_not_found(exc.code) and not isinstance(exc, NotFoundError):
                raise NotFoundError(exc.action, exc.code, exc.message, exc.request_id) from exc
            raise

    def wait_task(self, action: str, task_id: str) -> None:
        """Poll DescribeVpcTaskResult until SUCCESS; FAILED → TaskFailedError;
        still RUNNING at the deadline → TaskTimeoutError."""
        start = self._clock()
        deadline = start + self.settings.task_timeout_s
        delay = self.settings.task_poll_s
        while True:
            self._sleep(delay)  # a task never ends within the call: wait before polling
            reply = self._call("DescribeVpcTaskResult", {"TaskId": task_id})
            status = str(reply.get("Status") or "")
            if status == "SUCCESS":
                self.metrics.task_wait.labels(action, status).observe(self._clock() - start)
                return
            if status == "FAILED":
                self.metrics.task_wait.labels(action, status).observe(self._clock() - start)
                output = str(reply.get("Output") or "")
                raise TaskFailedError(
                    action, "TaskFailed", f"task {task_id} failed: {output}", task_id, output=output
                )
            if self._clock() + delay > deadline:
                raise TaskTimeoutError(
                    action,
                    "TaskTimeout",
                    f"task {task_id} still {status or 'unknown'} after "
                    f"{self.settings.task_timeout_s:.0f}s",
                    task_id,
                )
            delay = min(self.settings.task_poll_max_s, delay * 1.5)

    def _write(
        self,
        action: str,
        params: dict[str, Any],
        *,
        gone_ok_on_retry: bool = False,
        done_if: Callable[[CloudError], bool] | None = None,
    ) -> dict[str, Any]:
        """A write and its task. ``gone_ok_on_retry``: a retry after an
        ambiguous failure that finds the resource gone counts as done (the
        first attempt did it). ``done_if``: errors that mean the wanted end
        state holds already (the caller's ``gone_ok``): logged, counted as done."""
        try:
            reply = self._call(action, params, write=True, gone_ok_on_retry=gone_ok_on_retry)
            request_id = reply.get("RequestId")
            if request_id:
                self.wait_task(action, str(request_id))
        except CloudError as exc:
            if done_if is None or not done_if(exc):
                raise
            log.info("%s %s: %s (already done)", action, _target(params), exc.code)
            return {}
        return reply

    # --- InstanceReader ------------------------------------------------------------
    def describe_instances(self, instance_ids: Sequence[InstanceId]) -> list[Instance]:
        out: list[Instance] = []
        for chunk in _chunks(list(instance_ids), MAX_IDS):
            reply = self._call("DescribeInstances", {"InstanceIds": chunk, "Limit": MAX_IDS})
            out.extend(mapping.instance_from(d) for d in reply.get("InstanceSet") or [])
        return out

    def eni_limits(self, instance_id: InstanceId) -> EniLimits:
        reply = self._call("DescribeNetworkInterfaceLimit", {"InstanceId": instance_id})
        enis = int(reply.get("EniQuantity") or 0)
        ips = int(reply.get("EniPrivateIpAddressQuantity") or 0)
        if enis < 1 or ips < 1:
            raise CloudError(
                "DescribeNetworkInterfaceLimit",
                "UnsupportedOperation.UnsupportedInstanceFamily",
                f"instance {instance_id} reports {enis} ENIs x {ips} IPs: it cannot hold ENIs",
                reply.get("RequestId"),
            )
        return EniLimits(enis, ips, "api")

    # --- SubnetReader --------------------------------------------------------------
    def describe_subnets(
        self, subnet_ids: Sequence[SubnetId] = (), *, vpc_id: VpcId | None = None
    ) -> list[Subnet]:
        out: list[Subnet] = []
        if subnet_ids:
            for chunk in _chunks(list(subnet_ids), MAX_IDS):
                reply = self._call("DescribeSubnets", {"SubnetIds": chunk, "Limit": str(MAX_IDS)})
                subs = [mapping.subnet_from(d) for d in reply.get("SubnetSet") or []]
                out.extend(s for s in subs if vpc_id is None or s.vpc_id == vpc_id)
            return out
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else None
        offset = 0
        while True:
            params: dict[str, Any] = {"Offset": str(offset), "Limit": str(PAGE)}
            if filters:
                params["Filters"] = filters
            reply = self._call("DescribeSubnets", params)
            page = reply.get("SubnetSet") or []
            out.extend(mapping.subnet_from(d) for d in page)
            offset += len(page)
            if not page or offset >= int(reply.get("TotalCount") or 0):
                return out

    # --- EniReader ---------------------------------------------------------------
    def describe_enis(
        self,
        *,
        eni_ids: Sequence[EniId] = (),
        instance_id: InstanceId | None = None,
        subnet_id: SubnetId | None = None,
        vpc_id: VpcId | None = None,
        tags: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> list[Eni]:
        filters: list[dict[str, Any]] = []
        for name, value in (
            ("attachment.instance-id", instance_id),
            ("subnet-id", subnet_id),
            ("vpc-id", vpc_id),
            ("address-ip", address),
        ):
            if value:
                filters.append({"Name": name, "Values": [value]})
        for key, value in (tags or {}).items():
            filters.append({"Name": f"tag:{key}", "Values": [value]})
        if eni_ids:
            # ids XOR filters on the wire: filter the id lookups locally
            found: list[Eni] = []
            for chunk in _chunks(list(eni_ids), MAX_IDS):
                found.extend(self._eni_pages({"NetworkInterfaceIds": chunk}))
            return [
                e for e in found if _eni_matches(e, instance_id, subnet_id, vpc_id, tags, address)
            ]
        return self._eni_pages({"Filters": filters} if filters else {})

    def _eni_pages(self, base: dict[str, Any]) -> list[Eni]:
        out: list[Eni] = []
        offset = 0
        while True:
            reply = self._call(
                "DescribeNetworkInterfaces", {**base, "Offset": offset, "Limit": PAGE}
            )
            page = reply.get("NetworkInterfaceSet") or []
            out.extend(mapping.eni_from(d) for d in page)
            offset += len(page)
            if not page or offset >= int(reply.get("TotalCount") or 0):
                return out

    # --- EniWriter -----------------------------------------------------------------
    def create_eni(
        self,
        *,
        vpc_id: VpcId,
        subnet_id: SubnetId,
        name: str,
        description: str = "",
        security_group_ids: Sequence[str] = (),
        secondary_ip_count: int = 0,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
        instance_id: InstanceId | None = None,
    ) -> Eni:
        """Create an ENI (with up to 10 secondary IPs; more are assigned after)
        tagged with the cluster id and creator, and wait until it is AVAILABLE."""
        all_tags = {TAG_CREATOR: self.settings.creator}
        if self.settings.cluster_id:
            all_tags[TAG_CLUSTER_ID] = self.settings.cluster_id
        if instance_id:
            all_tags[TAG_INSTANCE_ID] = instance_id
        all_tags.update(tags or {})
        token = client_token or str(uuid.uuid4())
        params: dict[str, Any] = {
            "VpcId": vpc_id,
            "SubnetId": subnet_id,
            "NetworkInterfaceName": name[:60],
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(all_tags.items())],
            "ClientToken": token,
        }
        if description:
            params["NetworkInterfaceDescription"] = description[:60]
        groups = list(security_group_ids) or list(self.settings.security_group_ids)
        if groups:
            params["SecurityGroupIds"] = groups
        first = min(secondary_ip_count, MAX_IPS_PER_CALL)
        if first > 0:
            params["SecondaryPrivateIpAddressCount"] = first
        reply = self._write("CreateNetworkInterface", params)
        eni = mapping.eni_from(reply["NetworkInterface"])
        eni = replace(
            eni, state="AVAILABLE", ips=tuple(replace(ip, state="AVAILABLE") for ip in eni.ips)
        )
        rest = secondary_ip_count - first
        if rest > 0:
            more = self.assign_ips(eni.eni_id, count=rest, client_token=f"{token}-more")
            eni = replace(eni, ips=eni.ips + tuple(PrivateIp(a, False) for a in more))
        return eni

    def attach_eni(
        self, eni_id: EniId, instance_id: InstanceId, *, client_token: str | None = None
    ) -> None:
        self._write(
            "AttachNetworkInterface",
            {
                "NetworkInterfaceId": eni_id,
                "InstanceId": instance_id,
                "ClientToken": client_token or str(uuid.uuid4()),
            },
        )

    def detach_eni(
        self,
        eni_id: EniId,
        instance_id: InstanceId,
        *,
        client_token: str | None = None,
        gone_ok: bool = False,
    ) -> None:
        """``gone_ok``: an ENI gone, or refused as not attached there, counts as done."""
        self._write(
            "DetachNetworkInterface",
            {
                "NetworkInterfaceId": eni_id,
                "InstanceId": instance_id,
                "ClientToken": client_token or str(uuid.uuid4()),
            },
            done_if=_not_attached if gone_ok else None,
        )

    def delete_eni(self, eni_id: EniId, *, gone_ok: bool = False) -> None:
        """Delete a detached ENI. When a retry finds it gone (the first attempt's
        reply was lost), that counts as done; with ``gone_ok`` any "not found" does."""
        self._write(
            "DeleteNetworkInterface",
            {"NetworkInterfaceId": eni_id},
            gone_ok_on_retry=True,
            done_if=_gone if gone_ok else None,
        )

    # --- IpWriter ------------------------------------------------------------------
    def assign_ips(
        self,
        eni_id: EniId,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]:
        if count and addresses:
            raise ValueError("assign_ips: give count or addresses, not both")
        if count < 0:
            raise ValueError(f"assign_ips: count must not be negative, got {count}")
        token = client_token or str(uuid.uuid4())
        out: list[str] = []
        batches: list[dict[str, Any]] = []
        if addresses:
            for chunk in _chunks(list(addresses), MAX_IPS_PER_CALL):
                batches.append({"PrivateIpAddresses": [{"PrivateIpAddress": a} for a in chunk]})
        else:
            left = count
            while left > 0:
                n = min(left, MAX_IPS_PER_CALL)
                batches.append({"SecondaryPrivateIpAddressCount": n})
                left -= n
        for i, batch in enumerate(batches):
            reply = self._write(
                "AssignPrivateIpAddresses",
                {
                    "NetworkInterfaceId": eni_id,
                    **batch,
                    "ClientToken": token if len(batches) == 1 else f"{token}-{i}",
                },
            )
            out.extend(str(d["PrivateIpAddress"]) for d in reply.get("PrivateIpAddressSet") or [])
        return out

    def unassign_ips(
        self, eni_id: EniId, addresses: Sequence[str], *, gone_ok: bool = False
    ) -> None:
        """Unassign (≤ 10 per call). A retry that finds the address gone after an
        ambiguous failure counts as done; with ``gone_ok``, addresses or the ENI
        gone (or the ENI no longer able to hold them) count as done."""
        for chunk in _chunks(list(addresses), MAX_IPS_PER_CALL):
            self._write(
                "UnassignPrivateIpAddresses",
                {
                    "NetworkInterfaceId": eni_id,
                    "PrivateIpAddresses": [{"PrivateIpAddress": a} for a in chunk],
                },
                gone_ok_on_retry=True,
                done_if=_gone_or_busy if gone_ok else None,
            )

    def migrate_ip(self, source_eni_id: EniId, destination_eni_id: EniId, address: str) -> None:
        self._write(
            "MigratePrivateIpAddress",
            {
                "SourceNetworkInterfaceId": source_eni_id,
                "DestinationNetworkInterfaceId": destination_eni_id,
                "PrivateIpAddress": address,
            },
        )


def _target(params: Mapping[str, Any]) -> str:
    eni = str(params.get("NetworkInterfaceId") or "")
    ips = [str(d.get("PrivateIpAddress")) for d in params.get("PrivateIpAddresses") or []]
    return f"{eni} {ips}" if ips else eni


def _eni_matches(  # noqa: PLR0917
    e: Eni,
    instance_id: InstanceId | None,
    subnet_id: SubnetId | None,
    vpc_id: VpcId | None,
    tags: Mapping[str, str] | None,
    address: str | None,
) -> bool:
    return (
        (instance_id is None or e.instance_id == instance_id)
        and (subnet_id is None or e.subnet_id == subnet_id)
        and (vpc_id is None or e.vpc_id == vpc_id)
        and all(e.tags.get(k) == v for k, v in (tags or {}).items())
        and (address is None or any(ip.address == address for ip in e.ips))
    )
