"""Security groups: their rules and their association with ENIs and instances.

VPC: CreateSecurityGroup, CreateSecurityGroupPolicies, DeleteSecurityGroupPolicies,
ModifySecurityGroupPolicies, DescribeSecurityGroupPolicies,
AssociateNetworkInterfaceSecurityGroups, DisassociateNetworkInterfaceSecurityGroups
(DescribeSecurityGroups: ``vpcsim.inventory``).
CVM: ModifyInstancesAttribute (``SecurityGroups``: the instance's whole ordered
list, on its primary ENI). CreateNetworkInterface's ``SecurityGroupIds`` are
checked here (``eni_group_ids``): only existing groups.

Semantics the emulator fixes (the API documents no more):

- an ENI holds at most ``MAX_GROUPS_PER_ENI`` groups, in order: the first has
  the highest priority;
- associating appends the groups (in the order given) that the ENI does not
  hold yet; one it holds keeps its place. Disassociating removes the given
  groups and keeps the others' order. Neither is asynchronous (no task);
- the primary ENI cannot be associated here ("本接口不支持主网卡绑定安全组"):
  an instance's groups are changed with ModifyInstancesAttribute;
- rules: a creation adds rules of one direction, appended, or inserted at
  ``PolicyIndex`` (0-based) when the first rule names one; a deletion matches
  by ``PolicyIndex`` or by (Protocol, Port, CidrBlock, Action), one direction
  per call; a reset (ModifySecurityGroupPolicies) replaces both directions
  (``Version`` "0": clears them). All check ``Version`` when it is given and
  bump it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.ids import looks_like
from vpcsim.inventory import security_group_json
from vpcsim.params import (
    Params,
    check_known,
    opt_str,
    opt_str_list,
    req_str,
    tags_param,
)
from vpcsim.world import SecurityGroup, SgPolicy, World

#: the actions that change the world (saved after each)
WRITES = {
    "CreateSecurityGroup",
    "CreateSecurityGroupPolicies",
    "DeleteSecurityGroupPolicies",
    "ModifySecurityGroupPolicies",
    "AssociateNetworkInterfaceSecurityGroups",
    "DisassociateNetworkInterfaceSecurityGroups",
    "ModifyInstancesAttribute",
}
MAX_GROUPS_PER_ENI = 5
MAX_POLICIES = 100  # per direction
MAX_IDS = 100
PROTOCOLS = ("TCP", "UDP", "ICMP", "ALL")
ACTIONS = ("ACCEPT", "DROP")
POLICY_FIELDS = {
    "PolicyIndex",
    "Protocol",
    "Port",
    "ServiceTemplate",
    "CidrBlock",
    "Ipv6CidrBlock",
    "SecurityGroupId",
    "AddressTemplate",
    "Action",
    "PolicyDescription",
    "ModifyTime",
    "Priority",
}
NOT_EMULATED = ("ServiceTemplate", "Ipv6CidrBlock", "SecurityGroupId", "AddressTemplate")


# --- lookups -------------------------------------------------------------------
def group(w: World, sg_id: str, name: str = "SecurityGroupId") -> SecurityGroup:
    if not looks_like("sg", sg_id):
        raise ApiError(
            "InvalidSecurityGroupID.Malformed",
            f"the value `{sg_id}` of parameter `{name}` is not a security group id",
        )
    g = w.security_groups.get(sg_id)
    if g is None:
        raise ApiError(
            "InvalidSecurityGroupID.NotFound", f"the security group `{sg_id}` does not exist"
        )
    return g


def group_ids(w: World, p: Params, name: str = "SecurityGroupIds") -> list[str]:
    ids = opt_str_list(p, name, max_items=MAX_IDS)
    if not ids:
        raise ApiError("MissingParameter", f"the parameter `{name}` is required")
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue.Duplicate", f"`{name}` repeats a security group")
    for sg_id in ids:
        group(w, sg_id, name)
    return ids


def eni_group_ids(w: World, p: Params) -> list[str]:
    """CreateNetworkInterface's optional ``SecurityGroupIds``: at most
    ``MAX_GROUPS_PER_ENI``, none repeated, each an existing group (else the
    association's errors: ``InvalidSecurityGroupID.Malformed`` / ``.NotFound``)."""
    ids = opt_str_list(p, "SecurityGroupIds", max_items=MAX_GROUPS_PER_ENI) or []
    if len(set(ids)) != len(ids):
        raise ApiError("InvalidParameterValue.Duplicate", "`SecurityGroupIds` repeats a group")
    for sg_id in ids:
        group(w, sg_id, "SecurityGroupIds")
    return ids


# --- rules: validation and JSON ------------------------------------------------
def port_ranges(port: str) -> list[tuple[int, int]]:
    """``ALL`` → [], ``80`` / ``80,443`` / ``8000-8080`` → inclusive ranges;
    ValueError otherwise."""
    if port.upper() == "ALL":
        return []
    out: list[tuple[int, int]] = []
    for part in port.split(","):
        lo_text, dash, hi_text = part.strip().partition("-")
        if not lo_text.isdigit() or (dash and not hi_text.isdigit()):
            raise ValueError(f"`{port}` is not a port, a port list or a port range")
        lo, hi = int(lo_text), int(hi_text) if dash else int(lo_text)
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"`{port}` is outside 1-65535 or a reversed range")
        out.append((lo, hi))
    if len(out) > 1 and any(lo != hi for lo, hi in out):
        raise ValueError(f"`{port}` mixes a list and a range")
    return out


def policy_from(raw: object, where: str) -> tuple[SgPolicy, int | None]:
    """A validated rule and the ``PolicyIndex`` it names (None: none)."""
    if not isinstance(raw, dict):
        raise ApiError("InvalidParameter", f"`{where}` items must be SecurityGroupPolicy objects")
    for key in raw:
        if key not in POLICY_FIELDS:
            raise ApiError("UnknownParameter", f"the parameter `{where}.{key}` is not recognized")
    for key in NOT_EMULATED:
        if raw.get(key):
            raise ApiError("UnsupportedOperation", f"`{where}.{key}` is not emulated")
    index = raw.get("PolicyIndex")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ApiError("InvalidParameterValue.Range", f"`{where}.PolicyIndex` must be 0 or more")
    protocol, port = _protocol_port(raw, where)
    cidr = _cidr(raw, where)
    action = str(raw.get("Action") or "").upper()
    if action not in ACTIONS:
        raise ApiError(
            "InvalidParameterValue", f"`{where}.Action` must be ACCEPT or DROP, got {action!r}"
        )
    desc = raw.get("PolicyDescription") or ""
    if not isinstance(desc, str) or len(desc) > 100:
        raise ApiError("InvalidParameterValue", f"`{where}.PolicyDescription` must be ≤100 chars")
    return SgPolicy(protocol, port, cidr, action, desc), index


def _protocol_port(raw: dict[str, Any], where: str) -> tuple[str, str]:
    protocol = str(raw.get("Protocol") or "").upper()
    if protocol not in PROTOCOLS:
        raise ApiError(
            "InvalidParameterValue",
            f"`{where}.Protocol` must be one of {'/'.join(PROTOCOLS)}, got {raw.get('Protocol')!r}",
        )
    port = str(raw.get("Port") or "ALL").strip()
    if protocol in ("ALL", "ICMP") and port.upper() != "ALL":
        raise ApiError("InvalidParameterValue", f"`{where}.Port` must be ALL for {protocol}")
    try:
        port_ranges(port)
    except ValueError as exc:
        raise ApiError("InvalidParameterValue.Range", f"`{where}.Port`: {exc}") from exc
    return protocol, "ALL" if port.upper() == "ALL" else port.replace(" ", "")


def _cidr(raw: dict[str, Any], where: str) -> str:
    cidr_raw = raw.get("CidrBlock")
    if not isinstance(cidr_raw, str) or not cidr_raw:
        raise ApiError("MissingParameter", f"`{where}.CidrBlock` is required")
    try:
        net = ipaddress.IPv4Network(cidr_raw, strict=False)
    except ValueError as exc:
        raise ApiError(
            "InvalidParameterValue.Malformed", f"`{where}.CidrBlock` {cidr_raw!r}: {exc}"
        ) from exc
    if net.network_address == ipaddress.IPv4Address(0):
        net = ipaddress.IPv4Network("0.0.0.0/0")  # 0.0.0.0/n means everything
    return str(net)


def policy_json(g: SecurityGroup, index: int, r: SgPolicy) -> dict[str, Any]:
    return {
        "PolicyIndex": index,
        "Protocol": r.protocol,
        "Port": r.port,
        "ServiceTemplate": {"ServiceId": "", "ServiceGroupId": ""},
        "CidrBlock": r.cidr,
        "Ipv6CidrBlock": "",
        "SecurityGroupId": "",
        "AddressTemplate": {"AddressId": "", "AddressGroupId": ""},
        "Action": r.action,
        "PolicyDescription": r.description,
        "ModifyTime": r.modify_time,
    }


def _policy_set(p: Params) -> tuple[dict[str, Any], str | None]:
    value = p.get("SecurityGroupPolicySet")
    if not isinstance(value, dict):
        raise ApiError("MissingParameter", "the parameter `SecurityGroupPolicySet` is required")
    for key in value:
        if key not in ("Version", "Egress", "Ingress", "PolicyStatistics"):
            raise ApiError(
                "UnknownParameter",
                f"the parameter `SecurityGroupPolicySet.{key}` is not recognized",
            )
    version = value.get("Version")
    if version is not None and not isinstance(version, str):
        raise ApiError("InvalidParameter", "`SecurityGroupPolicySet.Version` must be a string")
    return value, version


def _one_direction(value: dict[str, Any]) -> tuple[str, list[Any]]:
    given = [(d, value.get(d)) for d in ("Ingress", "Egress") if value.get(d)]
    if len(given) != 1:
        raise ApiError(
            "InvalidParameter",
            "`SecurityGroupPolicySet` must hold rules of exactly one direction (Ingress or Egress)",
        )
    direction, rules = given[0]
    if not isinstance(rules, list):
        raise ApiError("InvalidParameter", f"`SecurityGroupPolicySet.{direction}` must be an array")
    return direction, rules


def _check_version(g: SecurityGroup, version: str | None) -> None:
    if version not in (None, "") and version != str(g.version):
        raise ApiError(
            "UnsupportedOperation.VersionMismatch",
            f"version {version} of `{g.sg_id}`'s rules is not the current {g.version}",
        )


def _rules(g: SecurityGroup, direction: str) -> list[SgPolicy]:
    return g.ingress if direction == "Ingress" else g.egress


def _same(a: SgPolicy, b: SgPolicy) -> bool:
    return (a.protocol, a.port, a.cidr, a.action) == (b.protocol, b.port, b.cidr, b.action)


# --- actions -------------------------------------------------------------------
def create_group(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"GroupName", "GroupDescription", "ProjectId", "Tags"})
    name = req_str(p, "GroupName", max_len=60)
    desc = req_str(p, "GroupDescription", max_len=100)
    project = opt_str(p, "ProjectId")
    if project not in (None, "", "0"):
        raise ApiError("InvalidParameterValue", f"project `{project}` does not exist")
    tags = tags_param(p)
    g = ctx.world.add_security_group(name, description=desc)
    g.tags = tags
    return {"SecurityGroup": security_group_json(g)}


def describe_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"SecurityGroupId", "Filters"})
    g = group(ctx.world, req_str(p, "SecurityGroupId"))
    if p.get("Filters"):
        raise ApiError(
            "UnsupportedOperation", "`Filters` of DescribeSecurityGroupPolicies is not emulated"
        )
    return {
        "SecurityGroupPolicySet": {
            "Version": str(g.version),
            "Ingress": [policy_json(g, i, r) for i, r in enumerate(g.ingress)],
            "Egress": [policy_json(g, i, r) for i, r in enumerate(g.egress)],
            "PolicyStatistics": {
                "IngressIPv4TotalCount": len(g.ingress),
                "IngressIPv6TotalCount": 0,
                "EgressIPv4TotalCount": len(g.egress),
                "EgressIPv6TotalCount": 0,
            },
        }
    }


def create_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"SecurityGroupId", "SecurityGroupPolicySet"})
    g = group(ctx.world, req_str(p, "SecurityGroupId"))
    value, version = _policy_set(p)
    direction, raw_rules = _one_direction(value)
    parsed = [policy_from(r, f"{direction}[{i}]") for i, r in enumerate(raw_rules)]
    _check_version(g, version)
    rules = _rules(g, direction)
    if len(rules) + len(parsed) > MAX_POLICIES:
        raise ApiError(
            "LimitExceeded.SecurityGroupPolicySet",
            f"`{g.sg_id}` would hold {len(rules) + len(parsed)} {direction} rules, at most "
            f"{MAX_POLICIES}",
        )
    new = [r for r, _ in parsed]
    for i, r in enumerate(new):
        if any(_same(r, old) for old in rules) or any(_same(r, o) for o in new[:i]):
            raise ApiError(
                "UnsupportedOperation.DuplicatePolicy",
                f"`{g.sg_id}` already has the {direction} rule {r.protocol} {r.port} "
                f"{r.cidr} {r.action}",
            )
    at = parsed[0][1]
    if at is None or at >= len(rules):
        rules.extend(new)
    else:
        rules[at:at] = new
    g.version += 1
    return {}


def delete_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"SecurityGroupId", "SecurityGroupPolicySet"})
    g = group(ctx.world, req_str(p, "SecurityGroupId"))
    value, version = _policy_set(p)
    direction, raw_rules = _one_direction(value)
    _check_version(g, version)
    rules = _rules(g, direction)
    by_index = [isinstance(r, dict) and r.get("PolicyIndex") is not None for r in raw_rules]
    if any(by_index) and not all(by_index):
        raise ApiError(
            "InvalidParameter", "delete rules either all by PolicyIndex or all by match, not both"
        )
    drop: set[int] = set()
    for i, raw in enumerate(raw_rules):
        where = f"{direction}[{i}]"
        if by_index[i]:
            index = raw["PolicyIndex"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(rules):
                raise ApiError(
                    "InvalidParameterValue.Range",
                    f"`{where}.PolicyIndex` {index!r} names no {direction} rule of `{g.sg_id}`",
                )
            drop.add(index)
            continue
        want, _ = policy_from(raw, where)
        found = [j for j, r in enumerate(rules) if _same(r, want)]
        if not found:
            raise ApiError(
                "ResourceNotFound",
                f"`{g.sg_id}` has no {direction} rule {want.protocol} {want.port} {want.cidr} "
                f"{want.action}",
            )
        drop.update(found)
    rules[:] = [r for j, r in enumerate(rules) if j not in drop]
    g.version += 1
    return {}


def modify_policies(ctx: Ctx, p: Params) -> dict[str, Any]:
    """ModifySecurityGroupPolicies: both directions' rules replaced by those given
    (a direction not given ends empty); ``Version`` "0" clears every rule and the
    rules given are ignored; ``PolicyIndex`` is not accepted. All is checked
    before anything changes."""
    check_known(p, {"SecurityGroupId", "SecurityGroupPolicySet", "SortPolicys"})
    if p.get("SortPolicys") not in (None, False):
        raise ApiError("UnsupportedOperation", "`SortPolicys` is not emulated")
    g = group(ctx.world, req_str(p, "SecurityGroupId"))
    value, version = _policy_set(p)
    new: dict[str, list[SgPolicy]] = {"Ingress": [], "Egress": []}
    if version != "0":
        _check_version(g, version)
        for direction, kept in new.items():
            raw_rules = value.get(direction) or []
            if not isinstance(raw_rules, list):
                raise ApiError(
                    "InvalidParameter", f"`SecurityGroupPolicySet.{direction}` must be an array"
                )
            if len(raw_rules) > MAX_POLICIES:
                raise ApiError(
                    "LimitExceeded.SecurityGroupPolicySet",
                    f"{len(raw_rules)} {direction} rules, at most {MAX_POLICIES}",
                )
            for i, raw in enumerate(raw_rules):
                rule, index = policy_from(raw, f"{direction}[{i}]")
                if index is not None:
                    raise ApiError(
                        "InvalidParameter",
                        f"`{direction}[{i}].PolicyIndex`: this call takes no PolicyIndex",
                    )
                if any(_same(rule, o) for o in kept):
                    raise ApiError(
                        "UnsupportedOperation.DuplicatePolicy",
                        f"the {direction} rule {rule.protocol} {rule.port} {rule.cidr} "
                        f"{rule.action} is given twice",
                    )
                kept.append(rule)
    g.ingress[:] = new["Ingress"]
    g.egress[:] = new["Egress"]
    g.version += 1
    return {}


def _enis(ctx: Ctx, p: Params) -> list[Any]:
    ids = opt_str_list(p, "NetworkInterfaceIds", max_items=MAX_IDS)
    if not ids:
        raise ApiError("MissingParameter", "the parameter `NetworkInterfaceIds` is required")
    for i in ids:
        if not looks_like("eni", i):
            raise ApiError(
                "InvalidParameterValue.Malformed",
                f"`{i}` in `NetworkInterfaceIds` is not an eni id",
            )
    return [ctx.world.eni(i) for i in ids]


def associate_eni(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceIds", "SecurityGroupIds"})
    enis = _enis(ctx, p)
    ids = group_ids(ctx.world, p)
    for eni in enis:  # all checked before any changes
        if eni.primary:
            raise ApiError(
                "UnsupportedOperation",
                f"`{eni.eni_id}` is a primary network interface: change the instance's groups",
            )
        after = eni.security_groups + [g for g in ids if g not in eni.security_groups]
        if len(after) > MAX_GROUPS_PER_ENI:
            raise ApiError(
                "LimitExceeded",
                f"`{eni.eni_id}` would hold {len(after)} security groups, at most "
                f"{MAX_GROUPS_PER_ENI}",
            )
    for eni in enis:
        eni.security_groups.extend(g for g in ids if g not in eni.security_groups)
    return {}


def disassociate_eni(ctx: Ctx, p: Params) -> dict[str, Any]:
    check_known(p, {"NetworkInterfaceIds", "SecurityGroupIds"})
    enis = _enis(ctx, p)
    ids = group_ids(ctx.world, p)
    for eni in enis:
        eni.security_groups[:] = [g for g in eni.security_groups if g not in ids]
    return {}


def modify_instances(ctx: Ctx, p: Params) -> dict[str, Any]:
    """CVM ModifyInstancesAttribute: ``InstanceName`` and/or ``SecurityGroups``
    (the instance's new ordered list; the old groups are disassociated)."""
    check_known(
        p,
        {
            "InstanceIds",
            "InstanceName",
            "SecurityGroups",
            "CamRoleName",
            "HostName",
            "DisableApiTermination",
            "CamRoleType",
            "AutoReboot",
        },
    )
    w = ctx.world
    ids = opt_str_list(p, "InstanceIds", max_items=MAX_IDS)
    if not ids:
        raise ApiError("MissingParameter", "the parameter `InstanceIds` is required")
    for i in ids:
        if not looks_like("ins", i):
            raise ApiError("InvalidInstanceId.Malformed", f"`{i}` is not an instance id")
    name = opt_str(p, "InstanceName", max_len=128)
    groups = opt_str_list(p, "SecurityGroups", max_items=MAX_GROUPS_PER_ENI)
    if name is None and groups is None:
        raise ApiError("MissingParameter", "give at least one attribute to modify")
    if groups is not None:
        _check_instance_groups(w, groups)
    missing = [i for i in ids if i not in w.instances]
    if missing:
        raise ApiError("InvalidInstanceId.NotFound", f"the instance `{missing[0]}` does not exist")
    for i in ids:
        inst = w.instances[i]
        if name is not None:
            inst.name = name
        if groups is not None:
            primary = w.enis[inst.primary_eni_id]
            primary.security_groups = list(groups)
    return {}


def _check_instance_groups(w: World, groups: list[str]) -> None:
    if not groups:
        raise ApiError("InvalidParameterValue", "`SecurityGroups` must name at least one group")
    if len(set(groups)) != len(groups):
        raise ApiError("InvalidParameterValue.Duplicate", "`SecurityGroups` repeats a group")
    for sg_id in groups:
        if not looks_like("sg", sg_id):
            raise ApiError("InvalidSecurityGroupId.Malformed", f"`{sg_id}` is not a group id")
        if sg_id not in w.security_groups:
            raise ApiError("InvalidSecurityGroupId.NotFound", f"`{sg_id}` does not exist")
