"""VPC actions on secondary private IPs: assign, unassign, migrate (asynchronous)."""

from __future__ import annotations

from typing import Any

from vpcsim import tasks
from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.params import Params, check_known, opt_int, req_id, req_str
from vpcsim.vpc_eni import MAX_IPS_PER_CALL, busy_check, ip_quota, private_ip_list
from vpcsim.world import Ip


def assign(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p,
        {
            "NetworkInterfaceId",
            "PrivateIpAddresses",
            "SecondaryPrivateIpAddressCount",
            "QosLevel",
            "ClientToken",
        },
    )
    w = ctx.world
    eni_id = req_id(p, "NetworkInterfaceId", "eni")
    explicit = private_ip_list(p)
    count = opt_int(p, "SecondaryPrivateIpAddressCount", lo=1, hi=MAX_IPS_PER_CALL)
    if explicit and count:
        raise ApiError(
            "InvalidParameter.Coexist",
            "PrivateIpAddresses and SecondaryPrivateIpAddressCount cannot be given together",
        )
    if not explicit and not count:
        raise ApiError(
            "MissingParameter",
            "one of PrivateIpAddresses or SecondaryPrivateIpAddressCount is required",
        )
    if any(prim for _, prim in explicit):
        raise ApiError("InvalidParameterValue", "an assigned address cannot be Primary")
    eni = w.eni(eni_id)
    busy_check(eni)
    if eni.state != "AVAILABLE":
        raise ApiError("UnsupportedOperation.InvalidState", f"`{eni.eni_id}` is {eni.state}")
    want = len(explicit) or (count or 0)
    quota = ip_quota(w, eni)
    if len(eni.ips) + want > quota:
        raise ApiError(
            "LimitExceeded.EniPrivateIpLimit",
            f"`{eni.eni_id}` holds {len(eni.ips)} addresses; {want} more exceed its quota {quota}",
        )
    taken: list[str] = []
    try:
        for addr, _ in explicit:
            w.take_address(eni.subnet_id, addr)
            taken.append(addr)
        if count:
            taken.extend(w.allocate(eni.subnet_id, count))
    except ApiError:
        w.release(eni.subnet_id, taken)
        raise
    eni.ips.extend(Ip(a, False, "PENDING") for a in taken)
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "assign",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
        addresses=taken,
    )
    return {
        "PrivateIpAddressSet": [
            {"PrivateIpAddress": a, "Primary": False, "State": "PENDING", "QosLevel": "DEFAULT"}
            for a in taken
        ]
    }


def unassign(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceId", "PrivateIpAddresses", "InstanceId"})
    w = ctx.world
    eni_id = req_id(p, "NetworkInterfaceId", "eni")
    explicit = private_ip_list(p)
    eni = w.eni(eni_id)
    if not explicit:
        raise ApiError("MissingParameter", "the parameter `PrivateIpAddresses` is required")
    busy_check(eni)
    addrs = [a for a, _ in explicit]
    for a in addrs:
        ip = eni.ip(a)
        if ip is None:
            raise ApiError(
                "ResourceNotFound", f"the address `{a}` is not on network interface `{eni.eni_id}`"
            )
        if ip.primary:
            raise ApiError(
                "InvalidParameterValue",
                f"`{a}` is the primary address of `{eni.eni_id}` and cannot be unassigned",
            )
    for ip in eni.ips:
        if ip.address in addrs:
            ip.state = "DELETING"
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "unassign",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
        addresses=addrs,
    )
    return {}


def migrate(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p, {"SourceNetworkInterfaceId", "DestinationNetworkInterfaceId", "PrivateIpAddress"}
    )
    w = ctx.world
    src_id = req_id(p, "SourceNetworkInterfaceId", "eni")
    dst_id = req_id(p, "DestinationNetworkInterfaceId", "eni")
    addr = req_str(p, "PrivateIpAddress")
    src = w.eni(src_id)
    dst = w.eni(dst_id)
    if src.eni_id == dst.eni_id:
        raise ApiError("InvalidParameterValue", "source and destination are the same interface")
    ip = src.ip(addr)
    if ip is None:
        raise ApiError(
            "ResourceNotFound", f"the address `{addr}` is not on network interface `{src.eni_id}`"
        )
    if ip.primary:
        raise ApiError("InvalidParameterValue", f"`{addr}` is a primary address; it cannot migrate")
    if src.subnet_id != dst.subnet_id:
        raise ApiError(
            "UnsupportedOperation",
            f"`{src.eni_id}` is in `{src.subnet_id}`, `{dst.eni_id}` in `{dst.subnet_id}`; "
            "an address moves only within its subnet",
        )
    busy_check(src)
    busy_check(dst)
    if ip.state != "AVAILABLE":
        raise ApiError("UnsupportedOperation.InvalidState", f"`{addr}` is {ip.state}")
    quota = ip_quota(w, dst)
    if len(dst.ips) + 1 > quota:
        raise ApiError(
            "LimitExceeded.EniPrivateIpLimit",
            f"`{dst.eni_id}` already holds {len(dst.ips)} addresses, its quota",
        )
    ip.state = "MIGRATING"
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "migrate",
        [src, dst],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
        addresses=[addr],
    )
    return {}
