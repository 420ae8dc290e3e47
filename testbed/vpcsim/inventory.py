"""Read calls a client commonly starts with: DescribeVpcs, DescribeSecurityGroups,
DescribeRouteTables (VPC) and DescribeRegions, DescribeZones (CVM). Reply shapes
follow the API's models; the emulator's region is the only region it lists.

- Security groups: those of the start state plus any an ENI names.
- Route tables: one main table per VPC (``rtb-`` + the VPC id's suffix, the id
  DescribeSubnets reports), associated with every subnet, with no user routes.
- Zones: every zone a subnet or instance is in."""

from __future__ import annotations

import re
from typing import Any

from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.describe import MAX_IDS, page, tag_match
from vpcsim.ids import looks_like
from vpcsim.params import Params, check_known, opt_filters, opt_str_list
from vpcsim.world import SecurityGroup, Vpc, World

CREATED = "2026-01-01 00:00:00"
VPC_FILTERS = {"vpc-id", "vpc-name", "is-default", "cidr-block", "tag-key", "tag:*"}
SG_FILTERS = {"security-group-id", "security-group-name", "project-id", "tag-key", "tag:*"}
ROUTE_TABLE_FILTERS = {
    "route-table-id",
    "route-table-name",
    "vpc-id",
    "association.main",
    "tag-key",
    "tag:*",
}
# Region names and the numeric prefix of zone ids, as the API reports them.
REGIONS = {
    "ap-guangzhou": ("South China(Guangzhou)", 100000),
    "ap-shanghai": ("East China(Shanghai)", 200000),
    "ap-beijing": ("North China(Beijing)", 800000),
}


def _ids_or_filters(
    p: Params, ids_name: str, known: set[str], prefix: str
) -> tuple[list[str] | None, dict[str, list[str]]]:
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
    return ids, filters or {}


def _only(ids: list[str] | None, known: dict[str, Any], what: str) -> None:
    missing = [i for i in ids or [] if i not in known]
    if missing:
        raise ApiError("ResourceNotFound", f"the {what} `{missing[0]}` does not exist")


# --- VPCs ---------------------------------------------------------------------
def describe_vpcs(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"VpcIds", "Filters", "Offset", "Limit"})
    w = ctx.world
    ids, filters = _ids_or_filters(p, "VpcIds", VPC_FILTERS, "vpc")
    _only(ids, w.vpcs, "VPC")
    items = [
        v for v in sorted(w.vpcs.values(), key=lambda v: v.vpc_id) if ids is None or v.vpc_id in ids
    ]
    for name, values in filters.items():
        items = [v for v in items if _vpc_match(v, name, values)]
    sets, total = page(items, p, allow_str=True, render=vpc_json)
    return {"VpcSet": sets, "TotalCount": total}


def _vpc_match(v: Vpc, name: str, values: list[str]) -> bool:
    simple = {"vpc-id": v.vpc_id, "vpc-name": v.name, "is-default": "false", "cidr-block": v.cidr}
    if name in simple:
        return simple[name] in values
    return tag_match({}, name, values)


def vpc_json(v: Vpc) -> dict[str, Any]:
    return {
        "VpcName": v.name,
        "VpcId": v.vpc_id,
        "CidrBlock": v.cidr,
        "IsDefault": False,
        "EnableMulticast": False,
        "CreatedTime": CREATED,
        "DnsServerSet": [],
        "DomainName": "",
        "DhcpOptionsId": "",
        "EnableDhcp": True,
        "Ipv6CidrBlock": "",
        "TagSet": [],
        "AssistantCidrSet": [],
    }


# --- security groups ----------------------------------------------------------
def _security_groups(w: World) -> dict[str, SecurityGroup]:
    groups = dict(w.security_groups)
    for eni in w.enis.values():
        for sg_id in eni.security_groups:
            groups.setdefault(sg_id, SecurityGroup(sg_id, sg_id))
    return groups


def describe_security_groups(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(
        p, {"SecurityGroupIds", "Filters", "Offset", "Limit", "OrderField", "OrderDirection"}
    )
    groups = _security_groups(ctx.world)
    ids, filters = _ids_or_filters(p, "SecurityGroupIds", SG_FILTERS, "sg")
    _only(ids, groups, "security group")
    items = [g for k, g in sorted(groups.items()) if ids is None or k in ids]
    for name, values in filters.items():
        items = [g for g in items if _sg_match(g, name, values)]
    sets, total = page(items, p, allow_str=True, render=security_group_json)
    return {"SecurityGroupSet": sets, "TotalCount": total}


def _sg_match(g: SecurityGroup, name: str, values: list[str]) -> bool:
    simple = {"security-group-id": g.sg_id, "security-group-name": g.name, "project-id": "0"}
    if name in simple:
        return simple[name] in values
    return tag_match({}, name, values)


def security_group_json(g: SecurityGroup) -> dict[str, Any]:
    return {
        "SecurityGroupId": g.sg_id,
        "SecurityGroupName": g.name,
        "SecurityGroupDesc": g.description,
        "ProjectId": "0",
        "IsDefault": g.is_default,
        "CreatedTime": CREATED,
        "UpdateTime": CREATED,
        "TagSet": [],
    }


# --- route tables -------------------------------------------------------------
def route_table_id(vpc_id: str) -> str:
    return "rtb-" + vpc_id.removeprefix("vpc-")


def describe_route_tables(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"RouteTableIds", "Filters", "Offset", "Limit", "NeedRouterInfo"})
    w = ctx.world
    tables = {route_table_id(v.vpc_id): v for v in w.vpcs.values()}
    ids, filters = _ids_or_filters(p, "RouteTableIds", ROUTE_TABLE_FILTERS, "rtb")
    _only(ids, tables, "route table")
    items = [v for k, v in sorted(tables.items()) if ids is None or k in ids]
    for name, values in filters.items():
        items = [v for v in items if _route_table_match(v, name, values)]
    sets, total = page(items, p, allow_str=True, render=lambda v: route_table_json(w, v))
    return {"RouteTableSet": sets, "TotalCount": total}


def _route_table_match(v: Vpc, name: str, values: list[str]) -> bool:
    simple = {
        "route-table-id": route_table_id(v.vpc_id),
        "route-table-name": "default",
        "vpc-id": v.vpc_id,
        "association.main": "true",
    }
    if name in simple:
        return simple[name] in values
    return tag_match({}, name, values)


def route_table_json(w: World, v: Vpc) -> dict[str, Any]:
    rtb = route_table_id(v.vpc_id)
    subnets = sorted(s.subnet_id for s in w.subnets.values() if s.vpc_id == v.vpc_id)
    return {
        "VpcId": v.vpc_id,
        "RouteTableId": rtb,
        "RouteTableName": "default",
        "AssociationSet": [{"SubnetId": s, "RouteTableId": rtb} for s in subnets],
        "RouteSet": [],
        "Main": True,
        "CreatedTime": CREATED,
        "TagSet": [],
        "LocalCidrForCcn": [],
    }


# --- CVM: regions and zones ---------------------------------------------------
def describe_regions(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, set())
    region = ctx.world.region
    name = REGIONS.get(region, (region, 0))[0]
    return {
        "RegionSet": [{"Region": region, "RegionName": name, "RegionState": "AVAILABLE"}],
        "TotalCount": 1,
    }


def describe_zones(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, set())
    w = ctx.world
    zones = sorted({s.zone for s in w.subnets.values()} | {i.zone for i in w.instances.values()})
    sets = [zone_json(w.region, z) for z in zones]
    return {"ZoneSet": sets, "TotalCount": len(sets)}


def zone_json(region: str, zone: str) -> dict[str, Any]:
    region_name, base = REGIONS.get(region, (region, 0))
    m = re.fullmatch(re.escape(region) + r"-(\d+)", zone)
    number = int(m.group(1)) if m else 0
    city = region_name.partition("(")[2].rstrip(")") or region
    return {
        "Zone": zone,
        "ZoneName": f"{city} Zone {number}" if number else zone,
        "ZoneId": str(base + number) if base and number else "",
        "ZoneState": "AVAILABLE",
    }
