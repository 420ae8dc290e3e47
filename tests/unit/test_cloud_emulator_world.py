"""The emulator's pure parts: allocation, filters, faults, spec, ids, mapping."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from cloud import mapping
from vpcsim import describe, ids
from vpcsim.apierror import ApiError
from vpcsim.context import Ctx
from vpcsim.faults import Faults
from vpcsim.render import eni_json, instance_json, subnet_json
from vpcsim.spec import DEFAULT_SPEC, SpecError, build
from vpcsim.world import Eni, Ip, World


def _world() -> World:
    return build(DEFAULT_SPEC)


def _ctx(w: World, action: str = "DescribeNetworkInterfaces") -> Ctx:
    return Ctx(w, "req-1", Faults(), random.Random(0), action)


def test_ids_shape() -> None:
    for prefix in ("eni", "ins", "subnet", "vpc"):
        value = ids.new_id(prefix)
        assert re.fullmatch(rf"{prefix}-[a-z0-9]{{8}}", value)
        assert ids.looks_like(prefix, value)
    assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", ids.new_mac())
    assert not ids.looks_like("eni", "eni-ABCDEFGH")
    assert not ids.looks_like("eni", "ins-abcdefgh")
    assert not ids.looks_like("eni", "eni-abc")


def test_default_world() -> None:
    w = _world()
    assert sorted(w.instances) == ["ins-sim00001", "ins-sim00002"]
    assert {s.zone for s in w.subnets.values()} == {"ap-guangzhou-3", "ap-guangzhou-4"}
    assert all(any(e.primary for e in w.enis_of(i)) for i in w.instances)


def test_allocation_next_fit_and_exhaustion() -> None:
    w = World()
    vpc = w.add_vpc("10.1.0.0/16")
    s = w.add_subnet(vpc.vpc_id, "10.1.0.0/28", "z")
    got = w.allocate(s.subnet_id, 5)
    assert got == [f"10.1.0.{i}" for i in range(2, 7)]
    w.release(s.subnet_id, ["10.1.0.3"])
    more = w.allocate(s.subnet_id, 8)  # continues after .6, wraps to the freed .3
    assert more == [f"10.1.0.{i}" for i in range(7, 15)]
    assert w.allocate(s.subnet_id, 1) == ["10.1.0.3"]
    assert w.available_count(s.subnet_id) == 0
    with pytest.raises(ApiError) as err:
        w.allocate(s.subnet_id, 1)
    assert err.value.code == "ResourceInsufficient.Subnet"


@pytest.mark.parametrize(
    ("addr", "code"),
    [("10.1.0.1", "InvalidParameterValue.Reserved"),
     ("10.1.0.15", "InvalidParameterValue.Reserved"),
     ("10.1.0.0", "InvalidParameterValue.Reserved"), ("10.2.0.5", "InvalidParameterValue.Range"),
     ("x", "InvalidParameterValue.Malformed")],
)
def test_take_address_checks(addr: str, code: str) -> None:
    w = World()
    vpc = w.add_vpc("10.1.0.0/16")
    s = w.add_subnet(vpc.vpc_id, "10.1.0.0/28", "z")
    with pytest.raises(ApiError) as err:
        w.take_address(s.subnet_id, addr)
    assert err.value.code == code


def test_subnet_overlap_and_outside() -> None:
    w = World()
    vpc = w.add_vpc("10.1.0.0/16")
    w.add_subnet(vpc.vpc_id, "10.1.0.0/24", "z")
    with pytest.raises(ApiError):
        w.add_subnet(vpc.vpc_id, "10.1.0.128/25", "z")
    with pytest.raises(ApiError):
        w.add_subnet(vpc.vpc_id, "10.2.0.0/24", "z")


def _add_eni(w: World, subnet_id: str, name: str, tags: dict[str, str]) -> Eni:
    s = w.subnets[subnet_id]
    e = Eni(ids.new_id("eni"), s.vpc_id, subnet_id, s.zone, ids.new_mac(), False, name=name,
            ips=[Ip(a, i == 0) for i, a in enumerate(w.allocate(subnet_id, 2))], tags=tags)
    w.enis[e.eni_id] = e
    return e


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ([{"Name": "tag:team", "Values": ["a"]}], {"e1", "e2"}),
        ([{"Name": "tag:team", "Values": ["a", "b"]}], {"e1", "e2", "e3"}),
        ([{"Name": "tag-key", "Values": ["team"]}], {"e1", "e2", "e3"}),
        ([{"Name": "tag:team", "Values": ["a"]}, {"Name": "subnet-id",
                                                 "Values": ["subnet-sim00044"]}], {"e2"}),
        ([{"Name": "network-interface-name", "Values": ["e3"]}], {"e3"}),
        ([{"Name": "is-primary", "Values": ["true"]}], {"primary"}),
        ([{"Name": "eni-type", "Values": ["0"]}], {"e1", "e2", "e3"}),
        ([{"Name": "attachment.instance-id", "Values": ["ins-sim00001"]}], {"primary"}),
    ],
)
def test_eni_filters(filters: list[dict[str, Any]], names: set[str]) -> None:
    w = _world()
    _add_eni(w, "subnet-sim00033", "e1", {"team": "a"})
    _add_eni(w, "subnet-sim00044", "e2", {"team": "a"})
    _add_eni(w, "subnet-sim00033", "e3", {"team": "b"})
    reply = describe.describe_enis(_ctx(w), {"Filters": filters, "Limit": 100})
    got = {e["NetworkInterfaceName"] for e in reply["NetworkInterfaceSet"]}
    if names == {"primary"}:
        assert got == {"primary"} and reply["TotalCount"] >= 1
    else:
        assert got == names


def test_address_filter() -> None:
    w = _world()
    e = _add_eni(w, "subnet-sim00033", "e1", {})
    reply = describe.describe_enis(_ctx(w), {"Filters": [
        {"Name": "address-ip", "Values": [e.ips[1].address]}]})
    assert [x["NetworkInterfaceId"] for x in reply["NetworkInterfaceSet"]] == [e.eni_id]


@pytest.mark.parametrize(
    ("filters", "count"),
    [([{"Name": "zone", "Values": ["ap-guangzhou-3"]}], 2),
     ([{"Name": "vpc-id", "Values": ["vpc-sim00001"]}], 4),
     ([{"Name": "cidr-block", "Values": ["10.0.3.0/24", "10.0.4.0/24"]}], 2),
     ([{"Name": "subnet-name", "Values": ["pod-4"]}], 1)],
)
def test_subnet_filters(filters: list[dict[str, Any]], count: int) -> None:
    reply = describe.describe_subnets(_ctx(_world(), "DescribeSubnets"), {"Filters": filters})
    assert reply["TotalCount"] == count


def test_instance_filters_and_paging() -> None:
    w = _world()
    for _ in range(5):
        w.add_instance("subnet-sim00003")
    ctx = _ctx(w, "DescribeInstances")
    reply = describe.describe_instances(ctx, {"Filters": [{"Name": "zone",
                                                           "Values": ["ap-guangzhou-3"]}]})
    assert reply["TotalCount"] == 6
    page = describe.describe_instances(ctx, {"Offset": 4, "Limit": 3})
    assert page["TotalCount"] == 7 and len(page["InstanceSet"]) == 3


def test_faults_update_validation() -> None:
    f = Faults()
    f.update({"throttle_ratio": 1, "latency_ms": 5, "actions": ["A"], "rate_limits": False})
    assert f.throttle_ratio == 1.0 and isinstance(f.throttle_ratio, float)
    assert f.applies("A") and not f.applies("B")
    for bad in ({"nope": 1}, {"throttle_ratio": 1.5}, {"latency_ms": -1}, {"rate_limits": 1},
                {"throttle_code": 5}, {"actions": "A"}, {"latency_ms": True}):
        with pytest.raises(ValueError, match="fault"):
            Faults().update(bad)


def test_fault_rolls() -> None:
    f = Faults(throttle_ratio=0.5)
    rng = random.Random(3)
    rolls = [f.roll(f.throttle_ratio, "X", rng) for _ in range(1000)]
    assert 400 < sum(rolls) < 600
    assert not any(f.roll(0.0, "X", rng) for _ in range(100))


@pytest.mark.parametrize(
    "spec",
    [
        [],
        {"vpcs": [{"cidr": "10.0.0.0/16", "instances": [{"subnet": "missing"}]}]},
        {"vpcs": [{"cidr": "bad"}]},
        {"vpcs": [{"cidr": "10.0.0.0/16", "subnets": [{"cidr": "10.0.1.0/24"}]}]},
        {"vpcs": [{"cidr": "10.0.0.0/16", "subnets": [{"name": "a", "cidr": "10.0.1.0/24",
                                                        "zone": "z"}],
                   "instances": [{"subnet": "a", "type": "nonsense"}]}]},
    ],
)
def test_bad_specs(spec: Any) -> None:
    with pytest.raises(SpecError):
        build(spec)


def test_dump_round_trip() -> None:
    w = _world()
    _add_eni(w, "subnet-sim00033", "e1", {"k": "v"})
    again = build(w.to_dict())
    assert again.to_dict() == w.to_dict()
    assert again.available_count("subnet-sim00033") == w.available_count("subnet-sim00033")


def test_mapping_round_trip() -> None:
    w = _world()
    e = _add_eni(w, "subnet-sim00033", "e1", {"k": "v"})
    e.instance_id, e.device_index = "ins-sim00001", 1
    eni = mapping.eni_from(eni_json(w, e))
    assert eni.eni_id == e.eni_id and eni.mac == e.mac.lower()
    assert eni.instance_id == "ins-sim00001" and eni.device_index == 1
    assert eni.primary_ip == e.ips[0].address and eni.secondary_ips == (e.ips[1].address,)
    assert eni.tags == {"k": "v"}
    sub = mapping.subnet_from(subnet_json(w, w.subnets["subnet-sim00003"]))
    assert (sub.total_ips, sub.available_ips) == (253, 252)
    inst = mapping.instance_from(instance_json(w, w.instances["ins-sim00002"]))
    assert (inst.instance_type, inst.zone, inst.cpu) == ("SA2.MEDIUM4", "ap-guangzhou-4", 2)
