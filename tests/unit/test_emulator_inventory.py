"""The emulator's inventory reads (DescribeVpcs, DescribeSecurityGroups,
DescribeRouteTables, DescribeRegions, DescribeZones) and its TLS helpers, without
HTTP. The SDK-level checks are in tests/integration/test_emulator_reads.py."""

from __future__ import annotations

import random
from typing import Any

import pytest

from vpcsim import inventory, tls
from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.faults import Faults
from vpcsim.spec import DEFAULT_SPEC, SpecError, build
from vpcsim.world import World


def _ctx(w: World, action: str) -> Ctx:
    return Ctx(w, "req-1", Faults(), random.Random(0), action)


def _code(fn: Any, *args: Any) -> str:
    with pytest.raises(ApiError) as err:
        fn(*args)
    return err.value.code


def test_vpcs_filters_and_paging() -> None:
    w = build(DEFAULT_SPEC)
    w.add_vpc("172.16.0.0/16", "second", "vpc-sim00002")
    ctx = _ctx(w, "DescribeVpcs")
    assert inventory.describe_vpcs(ctx, {})["TotalCount"] == 2
    one = inventory.describe_vpcs(
        ctx, {"Filters": [{"Name": "cidr-block", "Values": ["172.16.0.0/16"]}]}
    )
    assert [v["VpcId"] for v in one["VpcSet"]] == ["vpc-sim00002"]
    page = inventory.describe_vpcs(ctx, {"Offset": "1", "Limit": "1"})
    assert (page["TotalCount"], [v["VpcId"] for v in page["VpcSet"]]) == (2, ["vpc-sim00002"])
    assert _code(inventory.describe_vpcs, ctx, {"VpcIds": ["vpc-sim00001"], "Filters": []}) == (
        "InvalidParameter.Coexist"
    )
    bad_filter = {"Filters": [{"Name": "colour", "Values": ["red"]}]}
    assert _code(inventory.describe_vpcs, ctx, bad_filter) == "InvalidParameter.FilterNotSupported"
    assert _code(inventory.describe_vpcs, ctx, {"Nope": 1}) == "UnknownParameter"


def test_route_tables_one_per_vpc_matching_subnets() -> None:
    w = build(DEFAULT_SPEC)
    ctx = _ctx(w, "DescribeRouteTables")
    (table,) = inventory.describe_route_tables(ctx, {})["RouteTableSet"]
    assert table["RouteTableId"] == "rtb-sim00001"
    assert len(table["AssociationSet"]) == len(w.subnets)
    missing = {"RouteTableIds": ["rtb-zzzzzzzz"]}
    assert _code(inventory.describe_route_tables, ctx, missing) == "ResourceNotFound"


def test_security_groups_from_the_spec_and_from_enis() -> None:
    w = build(DEFAULT_SPEC)
    next(iter(w.enis.values())).security_groups.append("sg-eni00001")
    ctx = _ctx(w, "DescribeSecurityGroups")
    got = inventory.describe_security_groups(ctx, {})["SecurityGroupSet"]
    assert [(g["SecurityGroupId"], g["IsDefault"]) for g in got] == [
        ("sg-eni00001", False),
        ("sg-sim00001", True),
    ]
    by_name = {"Filters": [{"Name": "security-group-name", "Values": ["default"]}]}
    assert inventory.describe_security_groups(ctx, by_name)["TotalCount"] == 1
    # kept in the dump
    again = World.from_dict(w.to_dict())
    assert again.security_groups == w.security_groups


def test_bad_security_group_in_a_spec() -> None:
    with pytest.raises(SpecError, match="sg-1"):
        build({"security_groups": [{"id": "sg-1"}]})


def test_regions_and_zones() -> None:
    w = build(DEFAULT_SPEC)
    regions = inventory.describe_regions(_ctx(w, "DescribeRegions"), {})
    assert regions["RegionSet"][0]["RegionName"] == "South China(Guangzhou)"
    zones = inventory.describe_zones(_ctx(w, "DescribeZones"), {})["ZoneSet"]
    assert zones[0] == {
        "Zone": "ap-guangzhou-3",
        "ZoneName": "Guangzhou Zone 3",
        "ZoneId": "100003",
        "ZoneState": "AVAILABLE",
    }
    # a region the table does not name: no invented id
    assert inventory.zone_json("ap-nowhere", "ap-nowhere-1")["ZoneId"] == ""
    assert _code(inventory.describe_zones, _ctx(w, "DescribeZones"), {"Offset": 0}) == (
        "UnknownParameter"
    )


def test_serving_names() -> None:
    assert tls.serving_names("0.0.0.0", ["a.test", "", "localhost"]) == [
        "localhost",
        "127.0.0.1",
        "::1",
        "a.test",
    ]
    assert tls.serving_names("10.1.2.3")[-1] == "10.1.2.3"


@pytest.mark.parametrize("name", ["a b", "http://x", "user@host"])
def test_issue_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid TLS name"):
        tls.issue(["localhost", name])


def test_pair_repr_hides_the_key() -> None:
    pair = tls.issue(["localhost"])
    assert b"PRIVATE KEY" in pair.key_pem
    assert "PRIVATE" not in repr(pair)
    assert b"PRIVATE" not in pair.ca_pem
