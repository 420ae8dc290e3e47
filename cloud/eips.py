"""Elastic-IP calls ipamd makes (``EipApi``), mixed into the adapter:
AllocateAddresses, DescribeAddresses, AssociateAddress, DisassociateAddress,
ReleaseAddresses and DescribeAddressQuota. The writes return a ``TaskId`` that
DescribeTaskResult follows (``Result`` RUNNING/SUCCESS/FAILED); each write here
waits for it with the adapter's task deadline.

Replays: AllocateAddresses takes a ClientToken (the same token answers the same
addresses); the others have none, so the adapter retries them only on answers
that say the call was not applied (throttling, 5xx before the call) and the
caller (ipamd's EIP controller) re-reads DescribeAddresses after any failure and
plans again: "already bound here", "already unbound" and "already gone" are
end states it accepts, never errors it repeats."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cloud.errors import CloudError, TaskFailedError, TaskTimeoutError, is_not_found
from cloud.settings import CloudSettings
from core.names import TAG_CLUSTER_ID, TAG_CREATOR

log = logging.getLogger(__name__)
PAGE = 100
MAX_IDS = 100


@dataclass(frozen=True, slots=True)
class Eip:
    eip_id: str
    public_ip: str
    status: str  # CREATING, UNBIND, BINDING, BIND, UNBINDING, OFFLINING, BIND_ENI
    eni_id: str | None = None
    private_ip: str | None = None
    isp: str = ""
    bandwidth: int | None = None
    created: str = ""  # ISO 8601 UTC, as the API gives it
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EipQuota:
    used: int
    limit: int

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)


class EipApi(Protocol):
    def allocate_eip(
        self,
        *,
        bandwidth_mbps: int | None,
        isp: str | None,
        charge_type: str | None,
        name: str,
        tags: Mapping[str, str],
        client_token: str,
    ) -> Eip:
        """AllocateAddresses (one), tagged with ``tags`` plus the cluster id and
        creator; waits for the task and returns the address as described."""
        ...

    def describe_eips(
        self, *, eip_ids: Sequence[str] = (), tags: Mapping[str, str] | None = None
    ) -> list[Eip]:
        """DescribeAddresses with paging; ``tags`` filter (AND) as ``tag:<key>``."""
        ...

    def associate_eip(self, eip_id: str, eni_id: str, private_ip: str) -> None: ...

    def disassociate_eip(self, eip_id: str, *, gone_ok: bool = False) -> None:
        """``gone_ok``: the EIP gone counts as done."""
        ...

    def release_eips(self, eip_ids: Sequence[str], *, gone_ok: bool = False) -> None:
        """``gone_ok``: an EIP gone counts as done (the others are released)."""
        ...

    def eip_quota(self) -> EipQuota:
        """DescribeAddressQuota's TOTAL_EIP_QUOTA."""
        ...


def eip_from(d: Mapping[str, Any]) -> Eip:
    bandwidth = d.get("Bandwidth")
    return Eip(
        eip_id=str(d["AddressId"]),
        public_ip=str(d.get("AddressIp") or ""),
        status=str(d.get("AddressStatus") or ""),
        eni_id=str(d["NetworkInterfaceId"]) if d.get("NetworkInterfaceId") else None,
        private_ip=str(d["PrivateAddressIp"]) if d.get("PrivateAddressIp") else None,
        isp=str(d.get("InternetServiceProvider") or ""),
        bandwidth=int(bandwidth) if isinstance(bandwidth, int | float) else None,
        created=str(d.get("CreatedTime") or ""),
        tags={str(t["Key"]): str(t.get("Value") or "") for t in d.get("TagSet") or []},
    )


class EipCalls:
    """Mixed into ``cloud.adapter.TencentCloud`` (which provides ``_call``,
    ``settings``, ``_sleep`` and ``_clock``)."""

    settings: CloudSettings
    _sleep: Callable[[float], None]
    _clock: Callable[[], float]

    def _call(
        self,
        action: str,
        params: dict[str, Any],
        *,
        write: bool = False,
        gone_ok_on_retry: bool = False,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _eip_task(self, action: str, reply: Mapping[str, Any]) -> None:
        """Wait for the EIP task in ``reply`` (DescribeTaskResult)."""
        task_id = reply.get("TaskId")
        if not task_id:
            return
        start = self._clock()
        deadline = start + self.settings.task_timeout_s
        delay = self.settings.task_poll_s
        while True:
            self._sleep(delay)
            result = self._call("DescribeTaskResult", {"TaskId": int(task_id)})
            status = str(result.get("Result") or "")
            if status == "SUCCESS":
                return
            if status == "FAILED":
                raise TaskFailedError(
                    action, "TaskFailed", f"task {task_id} failed", str(task_id), output="FAILED"
                )
            if self._clock() + delay > deadline:
                raise TaskTimeoutError(
                    action,
                    "TaskTimeout",
                    f"task {task_id} still {status or 'unknown'} after "
                    f"{self.settings.task_timeout_s:.0f}s",
                    str(task_id),
                )
            delay = min(self.settings.task_poll_max_s, delay * 1.5)

    def allocate_eip(
        self,
        *,
        bandwidth_mbps: int | None,
        isp: str | None,
        charge_type: str | None,
        name: str,
        tags: Mapping[str, str],
        client_token: str,
    ) -> Eip:
        all_tags = {TAG_CREATOR: self.settings.creator}
        if self.settings.cluster_id:
            all_tags[TAG_CLUSTER_ID] = self.settings.cluster_id
        all_tags.update(tags)
        params: dict[str, Any] = {
            "AddressCount": 1,
            "AddressName": name[:128],
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(all_tags.items())],
            "ClientToken": client_token[:64],
        }
        if bandwidth_mbps is not None:
            params["InternetMaxBandwidthOut"] = bandwidth_mbps
        if isp:
            params["InternetServiceProvider"] = isp
        if charge_type:
            params["InternetChargeType"] = charge_type
        reply = self._call("AllocateAddresses", params, write=True)
        ids = [str(a) for a in reply.get("AddressSet") or []]
        if len(ids) != 1:
            raise CloudError("AllocateAddresses", "UnexpectedReply", f"AddressSet {ids!r}")
        self._eip_task("AllocateAddresses", reply)
        found = self.describe_eips(eip_ids=ids)
        if not found:
            raise CloudError("AllocateAddresses", "UnexpectedReply", f"{ids[0]} not described")
        return found[0]

    def describe_eips(
        self, *, eip_ids: Sequence[str] = (), tags: Mapping[str, str] | None = None
    ) -> list[Eip]:
        out: list[Eip] = []
        if eip_ids:
            for i in range(0, len(eip_ids), MAX_IDS):
                chunk = list(eip_ids[i : i + MAX_IDS])
                out.extend(self._pages({"AddressIds": chunk}))
            return out
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted((tags or {}).items())]
        return self._pages({"Filters": filters} if filters else {})

    def _pages(self, base: dict[str, Any]) -> list[Eip]:
        out: list[Eip] = []
        offset = 0
        while True:
            reply = self._call("DescribeAddresses", {**base, "Offset": offset, "Limit": PAGE})
            page = reply.get("AddressSet") or []
            out.extend(eip_from(d) for d in page)
            offset += len(page)
            if not page or offset >= int(reply.get("TotalCount") or 0):
                return out

    def associate_eip(self, eip_id: str, eni_id: str, private_ip: str) -> None:
        params = {"AddressId": eip_id, "NetworkInterfaceId": eni_id, "PrivateIpAddress": private_ip}
        reply = self._call("AssociateAddress", params, write=True)
        self._eip_task("AssociateAddress", reply)

    def disassociate_eip(self, eip_id: str, *, gone_ok: bool = False) -> None:
        try:
            reply = self._call("DisassociateAddress", {"AddressId": eip_id}, write=True)
        except CloudError as exc:
            if gone_ok and is_not_found(exc.code):
                log.info("DisassociateAddress %s: %s (already gone)", eip_id, exc.code)
                return
            raise
        self._eip_task("DisassociateAddress", reply)

    def release_eips(self, eip_ids: Sequence[str], *, gone_ok: bool = False) -> None:
        ids = list(eip_ids)
        if gone_ok and ids:
            present = {e.eip_id for e in self.describe_eips(eip_ids=ids)}
            ids = [i for i in ids if i in present]
        for i in range(0, len(ids), MAX_IDS):
            chunk = ids[i : i + MAX_IDS]
            reply = self._call(
                "ReleaseAddresses", {"AddressIds": chunk}, write=True, gone_ok_on_retry=True
            )
            if reply:
                self._eip_task("ReleaseAddresses", reply)

    def eip_quota(self) -> EipQuota:
        reply = self._call("DescribeAddressQuota", {})
        for q in reply.get("QuotaSet") or []:
            if q.get("QuotaId") == "TOTAL_EIP_QUOTA":
                return EipQuota(int(q.get("QuotaCurrent") or 0), int(q.get("QuotaLimit") or 0))
        raise CloudError(
            "DescribeAddressQuota", "UnexpectedReply", "no TOTAL_EIP_QUOTA in QuotaSet"
        )
