"""VPC actions on elastic IPs: AllocateAddresses, DescribeAddresses,
AssociateAddress, DisassociateAddress, ReleaseAddresses, DescribeAddressQuota and
DescribeTaskResult (the EIP calls' task query; ENI calls use DescribeVpcTaskResult).

Semantics the emulator fixes where the API documents no more:

- an address is bound to one (ENI, private IP) pair; ``InstanceId`` binds to the
  instance's primary ENI and primary IP;
- when the bound private IP leaves its ENI (unassigned, ENI deleted) the address
  falls back to ``UNBIND``; when the IP moves to another ENI of the VPC
  (MigratePrivateIpAddress) the binding follows it;
- only ``UNBIND`` addresses may be associated or released, only ``BIND`` ones
  disassociated (``InvalidAddressIdStatus.NotPermit``); an address with a running
  task refuses every write (``UnsupportedOperation.AddressStatusNotPermit``).
"""

from __future__ import annotations

import time
from typing import Any

from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.eip_model import Eip, EipBook, EipTask
from vpcsim.ids import looks_like, new_id
from vpcsim.params import (
    Params,
    check_known,
    opt_filters,
    opt_int,
    opt_str,
    opt_str_list,
    req_str,
    tags_param,
)
from vpcsim.world import World

WRITES = {"AllocateAddresses", "AssociateAddress", "DisassociateAddress", "ReleaseAddresses"}
MAX_COUNT = 100  # AddressCount per call
MAX_IDS = 100
ISPS = ("BGP", "CMCC", "CTCC", "CUCC")
#: InternetChargeType → the InternetMaxBandwidthOut range it allows (Mbps)
BANDWIDTH_RANGE = {
    "TRAFFIC_POSTPAID_BY_HOUR": (1, 100),
    "BANDWIDTH_POSTPAID_BY_HOUR": (1, 100),
    "BANDWIDTH_PREPAID_BY_MONTH": (1, 200),
    "BANDWIDTH_PACKAGE": (1, 2000),
}
NOT_EMULATED = {
    "IPChargeType",
    "AddressChargePrepaid",
    "AnycastZone",
    "VipCluster",
    "ApplicableForCLB",
    "BandwidthPackageId",
    "DedicatedClusterId",
    "IsDedicatedAddressPool",
    "Egress",
    "AntiDDoSPackageId",
}
FILTERS = {
    "address-id",
    "address-name",
    "address-ip",
    "address-status",
    "instance-id",
    "private-ip-address",
    "network-interface-id",
    "address-type",
    "tag-key",
    "tag:*",
}


def book(w: World) -> EipBook:
    return w.eips


def _address(w: World, address_id: str, name: str = "AddressId") -> Eip:
    if not looks_like("eip", address_id):
        raise ApiError(
            "InvalidParameterValue.AddressIdMalformed",
            f"the value `{address_id}` of parameter `{name}` is not an EIP id",
        )
    e = book(w).addresses.get(address_id)
    if e is None:
        raise ApiError("InvalidAddressId.NotFound", f"the EIP `{address_id}` does not exist")
    return e


def _not_busy(e: Eip) -> None:
    if e.busy_task is not None:
        raise ApiError(
            "UnsupportedOperation.AddressStatusNotPermit",
            f"the EIP `{e.address_id}` is {e.status} (task {e.busy_task} running)",
        )


def _status(e: Eip, want: str, action: str) -> None:
    _not_busy(e)
    if e.status != want:
        raise ApiError(
            "InvalidAddressIdStatus.NotPermit",
            f"the EIP `{e.address_id}` is {e.status}; {action} needs {want}",
        )


# --- tasks ------------------------------------------------------------------------
def advance(w: World, now: float | None = None) -> None:
    """Finish every due EIP task, then keep bindings consistent with the ENIs."""
    t = time.monotonic() if now is None else now
    b = book(w)
    for task in list(b.tasks.values()):
        if task.status == "RUNNING" and task.done_at <= t:
            _finish(b, task)
    _follow_ips(w)
    if len(b.tasks) > 20_000:
        for task_id in [k for k, v in b.tasks.items() if v.status != "RUNNING"][:10_000]:
            del b.tasks[task_id]


def _unbind(e: Eip) -> None:
    e.status, e.eni_id, e.private_ip, e.instance_id = "UNBIND", None, None, None


def _finish(b: EipBook, task: EipTask) -> None:
    """Apply a due task: its end state on success, the state before it on failure
    (a failed allocation leaves no address, a failed release keeps it)."""
    ok = not task.fail
    task.status = "SUCCESS" if ok else "FAILED"
    for address_id in task.address_ids:
        e = b.addresses.get(address_id)
        if e is None:
            continue
        e.busy_task = None
        gone = (task.kind == "allocate" and not ok) or (task.kind == "release" and ok)
        if gone:
            del b.addresses[address_id]
        elif task.kind == "associate":
            e.status = "BIND" if ok else e.status
            if not ok:
                _unbind(e)
        elif task.kind == "disassociate" and ok:
            _unbind(e)
        else:  # allocate ok, disassociate failed (still bound), release failed
            e.status = "BIND" if task.kind == "disassociate" else "UNBIND"


def _follow_ips(w: World) -> None:
    for e in book(w).addresses.values():
        if e.status not in ("BIND", "BINDING") or e.private_ip is None:
            continue
        eni = w.enis.get(e.eni_id or "")
        if eni is not None and eni.ip(e.private_ip) is not None:
            e.instance_id = eni.instance_id
            continue
        holder = next((x for x in w.enis.values() if x.ip(e.private_ip) is not None), None)
        if holder is not None and (eni is None or holder.vpc_id == eni.vpc_id):
            e.eni_id, e.instance_id = holder.eni_id, holder.instance_id
        else:
            _unbind(e)
            e.busy_task = None


def _task(ctx: Ctx, kind: str, address_ids: list[str]) -> int:
    return book(ctx.world).new_task(kind, address_ids, ctx.task_delay_s, ctx.task_fails()).task_id


# --- actions ----------------------------------------------------------------------
def allocate(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p,
        {
            "AddressCount",
            "InternetServiceProvider",
            "InternetChargeType",
            "InternetMaxBandwidthOut",
            "AddressType",
            "Tags",
            "AddressName",
            "ClientToken",
            *NOT_EMULATED,
        },
    )
    for key in NOT_EMULATED:
        if key in p:
            raise ApiError("UnsupportedOperation", f"`{key}` is not emulated")
    count = opt_int(p, "AddressCount", lo=1, hi=MAX_COUNT, allow_str=True) or 1
    isp = opt_str(p, "InternetServiceProvider") or "BGP"
    if isp not in ISPS:
        raise ApiError(
            "InvalidParameterValue",
            f"InternetServiceProvider `{isp}` is not one of {', '.join(ISPS)}",
        )
    charge = opt_str(p, "InternetChargeType") or "TRAFFIC_POSTPAID_BY_HOUR"
    if charge not in BANDWIDTH_RANGE:
        raise ApiError(
            "InvalidParameterValue",
            f"InternetChargeType `{charge}` is not one of {', '.join(BANDWIDTH_RANGE)}",
        )
    lo, hi = BANDWIDTH_RANGE[charge]
    bandwidth = opt_int(p, "InternetMaxBandwidthOut", allow_str=True)
    if bandwidth is None:
        bandwidth = 1
    if not lo <= bandwidth <= hi:
        raise ApiError(
            "InvalidParameterValue.BandwidthOutOfRange",
            f"InternetMaxBandwidthOut {bandwidth} is outside [{lo}, {hi}] Mbps for {charge}",
        )
    kind = opt_str(p, "AddressType") or "EIP"
    if kind != "EIP":
        raise ApiError("UnsupportedOperation", f"AddressType `{kind}` is not emulated")
    name = opt_str(p, "AddressName", max_len=128) or ""
    tags = tags_param(p)
    b = book(ctx.world)
    if len(b.addresses) + count > b.quota:
        raise ApiError(
            "AddressQuotaLimitExceeded",
            f"{len(b.addresses)} EIPs exist, {count} more would exceed the quota of {b.quota}",
        )
    made: list[str] = []
    for _ in range(count):
        ip = b.free_ip()
        if ip is None:
            for a in made:
                del b.addresses[a]
            raise ApiError("ResourceInsufficient", f"the EIP pool {b.pool} has no free address")
        e = Eip(new_id("eip"), ip, name=name, isp=isp, bandwidth=bandwidth, charge_type=charge)
        e.tags = dict(tags)
        b.addresses[e.address_id] = e
        made.append(e.address_id)
    return {"AddressSet": made, "TaskId": str(_task(ctx, "allocate", made))}


def address_json(e: Eip) -> dict[str, Any]:
    return {
        "AddressId": e.address_id,
        "AddressName": e.name,
        "AddressStatus": e.status,
        "AddressIp": e.address_ip,
        "InstanceId": e.instance_id,
        "CreatedTime": e.created_time,
        "NetworkInterfaceId": e.eni_id,
        "PrivateAddressIp": e.private_ip,
        "IsArrears": False,
        "IsBlocked": False,
        "IsEipDirectConnection": False,
        "AddressType": "EIP",
        "CascadeRelease": False,
        "InternetServiceProvider": e.isp,
        "LocalBgp": False,
        "Bandwidth": e.bandwidth,
        "InternetChargeType": e.charge_type,
        "TagSet": [{"Key": k, "Value": v} for k, v in sorted(e.tags.items())],
        "InstanceType": "ENI" if e.eni_id else None,
    }


def _matches(e: Eip, name: str, values: list[str]) -> bool:
    if name.startswith("tag:"):
        return e.tags.get(name[4:]) in values
    field = {
        "address-id": e.address_id,
        "address-name": e.name,
        "address-ip": e.address_ip,
        "address-status": e.status,
        "instance-id": e.instance_id,
        "private-ip-address": e.private_ip,
        "network-interface-id": e.eni_id,
        "address-type": "EIP",
    }
    if name == "tag-key":
        return any(k in values for k in e.tags)
    return field.get(name) in values


def describe(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"AddressIds", "Filters", "Offset", "Limit"})
    ids = opt_str_list(p, "AddressIds", max_items=MAX_IDS)
    filters = opt_filters(p, FILTERS)
    if ids is not None and filters is not None:
        raise ApiError("InvalidParameterConflict", "`AddressIds` and `Filters` cannot be combined")
    if filters is not None and len(filters) > 10:
        raise ApiError("InvalidParameterValue.LimitExceeded", "at most 10 Filters per request")
    offset = opt_int(p, "Offset", lo=0) or 0
    limit = opt_int(p, "Limit", lo=1, hi=100)
    limit = 20 if limit is None else limit
    items = sorted(book(ctx.world).addresses.values(), key=lambda e: e.address_id)
    if ids is not None:
        for i in ids:
            if not looks_like("eip", i):
                raise ApiError(
                    "InvalidParameterValue.AddressIdMalformed", f"`{i}` is not an EIP id"
                )
        items = [e for e in items if e.address_id in ids]
    for name, values in (filters or {}).items():
        items = [e for e in items if _matches(e, name, values)]
    page = items[offset : offset + limit]
    return {"TotalCount": len(items), "AddressSet": [address_json(e) for e in page]}


def associate(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p,
        {
            "AddressId",
            "InstanceId",
            "NetworkInterfaceId",
            "PrivateIpAddress",
            "EipDirectConnection",
            "InstanceRegion",
        },
    )
    w = ctx.world
    e = _address(w, req_str(p, "AddressId"))
    instance_id = opt_str(p, "InstanceId")
    eni_id = opt_str(p, "NetworkInterfaceId")
    private_ip = opt_str(p, "PrivateIpAddress")
    if p.get("EipDirectConnection") not in (None, False):
        raise ApiError("UnsupportedOperation", "EipDirectConnection is not emulated")
    if instance_id and eni_id:
        raise ApiError(
            "InvalidParameterConflict", "`InstanceId` and `NetworkInterfaceId` cannot be combined"
        )
    if instance_id:
        inst = w.instances.get(instance_id)
        if inst is None:
            raise ApiError(
                "InvalidInstanceId.NotFound", f"the instance `{instance_id}` does not exist"
            )
        eni_id, private_ip = inst.primary_eni_id, inst.private_ip
    elif not eni_id:
        raise ApiError("MissingParameter", "`InstanceId` or `NetworkInterfaceId` is required")
    elif not private_ip:
        raise ApiError(
            "MissingParameter", "`PrivateIpAddress` is required with `NetworkInterfaceId`"
        )
    eni = w.enis.get(eni_id)
    if eni is None or private_ip is None or eni.ip(private_ip) is None:
        raise ApiError(
            "InvalidNetworkInterfaceId.NotFound",
            f"the network interface `{eni_id}` does not exist or does not hold `{private_ip}`",
        )
    _status(e, "UNBIND", "AssociateAddress")
    for other in book(w).addresses.values():
        if other.private_ip == private_ip and other.eni_id is not None:
            raise ApiError(
                "InvalidPrivateIpAddress.AlreadyBindEip",
                f"`{private_ip}` on `{eni_id}` is bound to `{other.address_id}` already",
            )
    e.status, e.eni_id, e.private_ip, e.instance_id = (
        "BINDING",
        eni.eni_id,
        private_ip,
        eni.instance_id,
    )
    return {"TaskId": str(_task(ctx, "associate", [e.address_id]))}


def disassociate(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"AddressId", "ReallocateNormalPublicIp"})
    if p.get("ReallocateNormalPublicIp") not in (None, False):
        raise ApiError("UnsupportedOperation", "ReallocateNormalPublicIp is not emulated")
    e = _address(ctx.world, req_str(p, "AddressId"))
    _status(e, "BIND", "DisassociateAddress")
    e.status = "UNBINDING"
    return {"TaskId": str(_task(ctx, "disassociate", [e.address_id]))}


def release(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"AddressIds"})
    ids = opt_str_list(p, "AddressIds", max_items=MAX_IDS)
    if not ids:
        raise ApiError("MissingParameter", "the parameter `AddressIds` is required")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue.Duplicate", "`AddressIds` repeats an id")
    found = [_address(ctx.world, i, "AddressIds") for i in ids]
    for e in found:
        _status(e, "UNBIND", "ReleaseAddresses")
    for e in found:
        e.status = "OFFLINING"
    return {"TaskId": str(_task(ctx, "release", ids))}


def quota(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, set())
    b = book(ctx.world)
    return {
        "QuotaSet": [
            {"QuotaId": "TOTAL_EIP_QUOTA", "QuotaCurrent": len(b.addresses), "QuotaLimit": b.quota},
        ]
    }


def task_result(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"TaskId", "DealName"})
    if p.get("DealName") is not None:
        raise ApiError("UnsupportedOperation", "DealName is not emulated; give TaskId")
    task_id = opt_int(p, "TaskId", lo=0, allow_str=True)
    if task_id is None:
        raise ApiError("MissingParameter", "the parameter `TaskId` is required")
    task = book(ctx.world).tasks.get(task_id)
    if task is None:
        raise ApiError("InvalidParameterValue", f"the task `{task_id}` does not exist")
    return {"TaskId": task.task_id, "Result": task.status}
