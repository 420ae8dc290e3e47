"""VPC actions on ENIs: create, attach, detach, delete (all asynchronous)."""

from __future__ import annotations

from typing import Any

from vpcsim import security_groups, tasks
from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.ids import new_id, new_mac
from vpcsim.params import (
    Params,
    check_known,
    opt_int,
    opt_str,
    req_id,
    req_str,
    tags_param,
)
from vpcsim.render import eni_json
from vpcsim.world import UNATTACHED_ENI_IP_QUOTA, Eni, Ip, World, now_text

MAX_IPS_PER_CALL = 10


def busy_check(eni: Eni) -> None:
    if eni.busy_task is not None:
        raise ApiError(
            "UnsupportedOperation.MutexOperationTaskRunning",
            f"the network interface `{eni.eni_id}` has a running task {eni.busy_task}",
        )


def ip_quota(world: World, eni: Eni) -> int:
    if eni.instance_id is None:
        return UNATTACHED_ENI_IP_QUOTA
    return world.instance(eni.instance_id).limits().ips_per_eni


def private_ip_list(params: Params, name: str = "PrivateIpAddresses") -> list[tuple[str, bool]]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError("InvalidParameter", f"the parameter `{name}` must be an array")
    if len(value) > MAX_IPS_PER_CALL:
        raise ApiError(
            "InvalidParameterValue.LimitExceeded",
            f"`{name}` holds {len(value)} addresses, at most {MAX_IPS_PER_CALL} per call",
        )
    out: list[tuple[str, bool]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("PrivateIpAddress"), str):
            raise ApiError(
                "InvalidParameter", f"`{name}` items must be objects with PrivateIpAddress"
            )
        primary = item.get("Primary", False)
        if not isinstance(primary, bool):
            raise ApiError("InvalidParameter", f"`{name}.Primary` must be a boolean")
        out.append((item["PrivateIpAddress"], primary))
    addrs = [a for a, _ in out]
    if len(set(addrs)) != len(addrs):
        raise ApiError("InvalidParameterValue.Duplicate", f"`{name}` repeats an address")
    return out


def create(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p,
        {
            "VpcId",
            "NetworkInterfaceName",
            "SubnetId",
            "NetworkInterfaceDescription",
            "QosLevel",
            "SecurityGroupIds",
            "PrivateIpAddresses",
            "SecondaryPrivateIpAddressCount",
            "Ipv6Addresses",
            "Ipv6AddressCount",
            "Tags",
            "TrunkingFlag",
            "IsRdma",
            "ClientToken",
            "TerminationProtection",
            "TrafficProtection",
        },
    )
    w = ctx.world
    vpc_id = req_id(p, "VpcId", "vpc")
    name = req_str(p, "NetworkInterfaceName", max_len=60)
    subnet_id = req_id(p, "SubnetId", "subnet")
    desc = opt_str(p, "NetworkInterfaceDescription", max_len=60) or ""
    groups = security_groups.eni_group_ids(w, p)
    explicit = private_ip_list(p)
    count = opt_int(p, "SecondaryPrivateIpAddressCount", lo=1, hi=MAX_IPS_PER_CALL)
    tags = tags_param(p)
    if vpc_id not in w.vpcs:
        raise ApiError("ResourceNotFound", f"the VPC `{vpc_id}` does not exist")
    subnet = w.subnet(subnet_id)
    if subnet.vpc_id != vpc_id:
        raise ApiError(
            "InvalidParameterValue.Range",
            f"subnet `{subnet_id}` is not in VPC `{vpc_id}`",
        )
    n_enis = sum(1 for e in w.enis.values() if e.vpc_id == vpc_id and not e.primary)
    if n_enis >= w.vpcs[vpc_id].eni_quota:
        raise ApiError(
            "LimitExceeded.NetworkInterfaceLimitExceeded",
            f"VPC `{vpc_id}` holds {n_enis} network interfaces, its quota",
        )
    primaries = [a for a, prim in explicit if prim]
    if len(primaries) > 1:
        raise ApiError("InvalidParameterValue", "at most one address may be Primary")
    total = max(len(explicit), 1) + (count or 0)
    if total > UNATTACHED_ENI_IP_QUOTA:
        raise ApiError(
            "LimitExceeded.EniPrivateIpLimit",
            f"{total} addresses exceed the {UNATTACHED_ENI_IP_QUOTA} a network interface holds",
        )
    taken: list[str] = []
    try:
        for addr, _ in explicit:
            w.take_address(subnet_id, addr)
            taken.append(addr)
        need = (0 if explicit else 1) + (count or 0)
        taken.extend(w.allocate(subnet_id, need))
    except ApiError:
        w.release(subnet_id, taken)
        raise
    if explicit and not primaries:
        primaries = [explicit[0][0]]
    primary_addr = primaries[0] if primaries else taken[0]
    ips = [Ip(primary_addr, True, "PENDING")] + [
        Ip(a, False, "PENDING") for a in taken if a != primary_addr
    ]
    eni = Eni(
        eni_id=new_id("eni"),
        vpc_id=vpc_id,
        subnet_id=subnet_id,
        zone=subnet.zone,
        mac=new_mac(),
        primary=False,
        name=name,
        description=desc,
        state="PENDING",
        security_groups=groups,
        ips=ips,
        tags=tags,
    )
    w.enis[eni.eni_id] = eni
    reply = {"NetworkInterface": eni_json(w, eni)}
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "create",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
    )
    return reply


def attach(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceId", "InstanceId", "AttachType", "ClientToken"})
    w = ctx.world
    eni_id = req_id(p, "NetworkInterfaceId", "eni")
    instance_id = req_id(p, "InstanceId", "ins")
    attach_type = opt_int(p, "AttachType", lo=0, hi=1)
    eni = w.eni(eni_id)
    inst = w.instance(instance_id)
    if attach_type:
        raise ApiError("UnsupportedOperation", "AttachType 1 (trunking) is not emulated")
    busy_check(eni)
    if eni.instance_id is not None:
        raise ApiError(
            "UnsupportedOperation.AttachmentAlreadyExists",
            f"`{eni.eni_id}` is already attached to `{eni.instance_id}`",
        )
    if eni.state != "AVAILABLE":
        raise ApiError("UnsupportedOperation.InvalidState", f"`{eni.eni_id}` is {eni.state}")
    if inst.state not in ("RUNNING", "STOPPED"):
        raise ApiError(
            "UnsupportedOperation.InvalidState", f"instance `{inst.instance_id}` is {inst.state}"
        )
    if inst.vpc_id != eni.vpc_id:
        raise ApiError(
            "UnsupportedOperation.VpcMismatch",
            f"`{eni.eni_id}` is in `{eni.vpc_id}`, the instance in `{inst.vpc_id}`",
        )
    if inst.zone != eni.zone:
        raise ApiError(
            "UnsupportedOperation.ZoneMismatch",
            f"`{eni.eni_id}` is in zone {eni.zone}, instance `{inst.instance_id}` in {inst.zone}",
        )
    if not eni.security_groups and w.vpcs[eni.vpc_id].require_security_group:
        raise ApiError(
            "UnsupportedOperation.NotFoundSecurityGroup",
            f"`{eni.eni_id}` has no security group; attaching needs one",
        )
    limits = inst.limits()
    if limits.enis < 2:
        raise ApiError(
            "UnsupportedOperation.UnsupportedInstanceFamily",
            f"instance type {inst.instance_type} does not support elastic network interfaces",
        )
    attached = w.enis_of(inst.instance_id)
    if len(attached) >= limits.enis:
        raise ApiError(
            "LimitExceeded.NetworkInterfaceLimitExceeded",
            f"instance `{inst.instance_id}` ({inst.instance_type}) holds {len(attached)} "
            f"network interfaces, its quota is {limits.enis}",
        )
    if len(eni.ips) > limits.ips_per_eni:
        raise ApiError(
            "LimitExceeded.EniPrivateIpLimit",
            f"`{eni.eni_id}` holds {len(eni.ips)} addresses, instance type "
            f"{inst.instance_type} allows {limits.ips_per_eni} per network interface",
        )
    used = {e.device_index for e in attached}
    eni.instance_id = inst.instance_id
    eni.device_index = next(i for i in range(1, 64) if i not in used)
    eni.attach_time = now_text()
    eni.state = "ATTACHING"
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "attach",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
        instance_id=inst.instance_id,
    )
    return {}


def detach(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceId", "InstanceId", "ClientToken"})
    w = ctx.world
    eni_id = req_id(p, "NetworkInterfaceId", "eni")
    instance_id = req_id(p, "InstanceId", "ins")
    eni = w.eni(eni_id)
    inst = w.instance(instance_id)
    busy_check(eni)
    if eni.primary:
        raise ApiError("UnsupportedOperation", f"`{eni.eni_id}` is a primary network interface")
    if eni.instance_id != inst.instance_id:
        raise ApiError(
            "UnsupportedOperation.InvalidState",
            f"`{eni.eni_id}` is not attached to `{inst.instance_id}`",
        )
    eni.state = "DETACHING"
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "detach",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
        instance_id=inst.instance_id,
    )
    return {}


def delete(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceId"})
    w = ctx.world
    eni = w.eni(req_id(p, "NetworkInterfaceId", "eni"))
    busy_check(eni)
    if eni.primary:
        raise ApiError("UnsupportedOperation", f"`{eni.eni_id}` is a primary network interface")
    if eni.instance_id is not None:
        raise ApiError(
            "UnsupportedOperation.InvalidState",
            f"`{eni.eni_id}` is attached to `{eni.instance_id}`; detach it first",
        )
    eni.state = "DELETING"
    tasks.start(
        w,
        ctx.request_id,
        ctx.action,
        "delete",
        [eni],
        delay_s=ctx.task_delay_s,
        fail=ctx.task_fails(),
    )
    return {}
