"""Read actions: DescribeNetworkInterfaces, DescribeNetworkInterfaceLimit,
DescribeSubnets, DescribeVpcTaskResult (VPC) and DescribeInstances (CVM)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.ids import looks_like
from vpcsim.params import Params, check_known, opt_filters, opt_int, opt_str_list, req_str
from vpcsim.render import eni_json, instance_json, subnet_json
from vpcsim.world import Eni, Instance, Subnet

T = TypeVar("T")
MAX_IDS = 100

ENI_FILTERS = {
    "vpc-id",
    "subnet-id",
    "network-interface-id",
    "attachment.instance-id",
    "attachment.device-index",
    "network-interface-name",
    "network-interface-description",
    "address-ip",
    "tag-key",
    "tag:*",
    "is-primary",
    "eni-type",
    "groups.security-group-id",
}
SUBNET_FILTERS = {
    "subnet-id",
    "vpc-id",
    "cidr-block",
    "zone",
    "subnet-name",
    "is-default",
    "tag-key",
    "tag:*",
}
INSTANCE_FILTERS = {
    "zone",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "private-ip-address",
    "instance-name",
    "instance-type",
    "instance-state",
}


def _ids_xor_filters(
    p: Params, ids_name: str, known: set[str], prefix: str
) -> tuple[list[str] | None, dict[str, list[str]] | None]:
    ids = opt_str_list(p, ids_name, max_items=MAX_IDS)
    filters = opt_filters(p, known)
    if ids is not None and filters is not None:
        raise ApiError(
            "InvalidParameter.Coexist", f"`{ids_name}` and `Filters` cannot be given together"
        )
    for i in ids or []:
        if not looks_like(prefix, i):
            raise ApiError(
                "InvalidParameterValue.Malformed", f"`{i}` in `{ids_name}` is not a {prefix} id"
            )
    return ids, filters


def tag_match(tags: dict[str, str], name: str, values: list[str]) -> bool:
    if name == "tag-key":
        return any(k in tags for k in values)
    key = name.removeprefix("tag:")
    return key in tags and tags[key] in values


def page(
    items: list[T],
    p: Params,
    *,
    allow_str: bool,
    render: Callable[[T], Any],
    default_limit: int = 20,
) -> tuple[list[Any], int]:
    offset = opt_int(p, "Offset", lo=0, allow_str=allow_str) or 0
    limit = opt_int(p, "Limit", lo=1, hi=100, allow_str=allow_str) or default_limit
    return [render(x) for x in items[offset : offset + limit]], len(items)


def describe_enis(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceIds", "Filters", "Offset", "Limit"})
    w = ctx.world
    ids, filters = _ids_xor_filters(p, "NetworkInterfaceIds", ENI_FILTERS, "eni")
    items = sorted(w.enis.values(), key=lambda e: (e.created_time, e.eni_id))
    if ids is not None:
        items = [e for e in items if e.eni_id in ids]
    for name, values in (filters or {}).items():
        items = [e for e in items if _eni_match(e, name, values)]
    sets, total = page(items, p, allow_str=False, render=lambda e: eni_json(w, e))
    return {"NetworkInterfaceSet": sets, "TotalCount": total}


def _eni_match(e: Eni, name: str, values: list[str]) -> bool:
    simple: dict[str, str | None] = {
        "vpc-id": e.vpc_id,
        "subnet-id": e.subnet_id,
        "network-interface-id": e.eni_id,
        "attachment.instance-id": e.instance_id,
        "attachment.device-index": None if e.device_index is None else str(e.device_index),
        "network-interface-name": e.name,
        "network-interface-description": e.description,
        "is-primary": "true" if e.primary else "false",
        "eni-type": "1" if e.primary else "0",
    }
    if name in simple:
        return simple[name] in values
    if name == "address-ip":
        return any(ip.address in values for ip in e.ips)
    if name == "groups.security-group-id":
        return any(g in values for g in e.security_groups)
    return tag_match(e.tags, name, values)


def eni_limit(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"InstanceId"})
    w = ctx.world
    target = req_str(p, "InstanceId")
    if looks_like("eni", target):
        eni = w.eni(target)
        if eni.instance_id is None:
            enis, ips = 1, 30
        else:
            lim = w.instance(eni.instance_id).limits()
            enis, ips = lim.enis, lim.ips_per_eni
    elif looks_like("ins", target):
        lim = w.instance(target).limits()
        enis, ips = lim.enis, lim.ips_per_eni
    else:
        raise ApiError(
            "InvalidParameterValue.Malformed", f"`{target}` is not an instance or ENI id"
        )
    return {
        "EniQuantity": enis,
        "EniPrivateIpAddressQuantity": ips,
        "ExtendEniQuantity": 0,
        "ExtendEniPrivateIpAddressQuantity": 0,
        "SubEniQuantity": 0,
        "SubEniPrivateIpAddressQuantity": 0,
    }


def describe_subnets(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"SubnetIds", "Filters", "Offset", "Limit", "MaxResults", "NextToken"})
    w = ctx.world
    ids, filters = _ids_xor_filters(p, "SubnetIds", SUBNET_FILTERS, "subnet")
    items = sorted(w.subnets.values(), key=lambda s: s.subnet_id)
    if ids is not None:
        missing = [i for i in ids if i not in w.subnets]
        if missing:
            raise ApiError("ResourceNotFound", f"the subnet `{missing[0]}` does not exist")
        items = [s for s in items if s.subnet_id in ids]
    for name, values in (filters or {}).items():
        items = [s for s in items if _subnet_match(s, name, values)]
    sets, total = page(items, p, allow_str=True, render=lambda s: subnet_json(w, s))
    return {"SubnetSet": sets, "TotalCount": total}


def _subnet_match(s: Subnet, name: str, values: list[str]) -> bool:
    simple = {
        "subnet-id": s.subnet_id,
        "vpc-id": s.vpc_id,
        "cidr-block": s.cidr,
        "zone": s.zone,
        "subnet-name": s.name,
        "is-default": "false",
    }
    if name in simple:
        return simple[name] in values
    return tag_match({}, name, values)


def task_result(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"TaskId"})
    task_id = req_str(p, "TaskId")
    task = ctx.world.tasks.get(task_id)
    if task is None:
        raise ApiError("ResourceNotFound", f"the task `{task_id}` does not exist")
    result = [{"ResourceId": task.eni_id, "Status": task.status}]
    return {"Status": task.status, "Output": task.output, "Result": result}


def describe_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"InstanceIds", "Filters", "Offset", "Limit"})
    w = ctx.world
    ids = opt_str_list(p, "InstanceIds", max_items=MAX_IDS)
    filters = opt_filters(p, INSTANCE_FILTERS)
    if ids is not None and filters is not None:
        raise ApiError(
            "InvalidParameter",
            "`InstanceIds` and `Filters` cannot be given together",
        )
    items = sorted(w.instances.values(), key=lambda i: i.instance_id)
    if ids is not None:
        for i in ids:
            if not looks_like("ins", i):
                raise ApiError("InvalidInstanceId.Malformed", f"`{i}` is not an instance id")
        # the real API answers unknown (well-formed) ids with an empty set
        items = [i for i in items if i.instance_id in ids]
    for name, values in (filters or {}).items():
        items = [i for i in items if _instance_match(i, name, values)]
    sets, total = page(items, p, allow_str=False, render=lambda i: instance_json(w, i))
    return {"InstanceSet": sets, "TotalCount": total}


def _instance_match(i: Instance, name: str, values: list[str]) -> bool:
    simple = {
        "zone": i.zone,
        "vpc-id": i.vpc_id,
        "subnet-id": i.subnet_id,
        "instance-id": i.instance_id,
        "private-ip-address": i.private_ip,
        "instance-name": i.name or i.instance_id,
        "instance-type": i.instance_type,
        "instance-state": i.state,
    }
    return simple.get(name) in values
