"""The emulator keeps its own copy of the cloud's facts (rate limits, ENI quotas,
subnet arithmetic). The client keeps its own. These tests check that the two
agree, and that the emulator's helpers behave as the cloud does."""

from __future__ import annotations

import pytest

from cloud.ratelimit import API_RATE_LIMITS
from core import cidr as client_cidr
from core.instance_type import InstanceType
from core.limits import limits_for, limits_for_type
from vpcsim import addressing
from vpcsim.instance_types import FAMILIES, Shape, eni_quota, quota_of, shape
from vpcsim.ratelimits import DOCUMENTED_LIMITS, UNDOCUMENTED_LIMIT, PerActionAllowance

MEMORIES = (None, 0.5, 1, 1.5, 2, 4, 8, 12, 16, 17, 24, 32, 64, 256)


def test_client_rate_table_agrees_with_the_clouds() -> None:
    for action, limit in API_RATE_LIMITS.items():
        assert DOCUMENTED_LIMITS.get(action) == limit, action


@pytest.mark.parametrize("family", [*sorted(FAMILIES), "S6", "SA3", "ZZ9"])
def test_client_eni_table_agrees_with_the_clouds(family: str) -> None:
    differ = []
    for vcpu in range(1, 70):
        for mem in MEMORIES:
            client = limits_for(InstanceType(family, vcpu, mem, f"{family}.?"))
            cloud = quota_of(Shape(family, vcpu, mem))
            if (client.enis, client.ips_per_eni) != cloud:
                differ.append((vcpu, mem, (client.enis, client.ips_per_eni), cloud))
    assert not differ, f"{family}: (vCPU, GiB, client, cloud) {differ[:5]}"


@pytest.mark.parametrize(
    "name",
    ["S5.LARGE8", "s5se.2xlarge16", "SA2.8XLARGE64", "SA1.SMALL1", "M5.XLARGE", "GN8.4XLARGE"],
)
def test_instance_type_names_agree(name: str) -> None:
    client = limits_for_type(name)
    assert eni_quota(name) == (client.enis, client.ips_per_eni)


def test_instance_type_shapes() -> None:
    assert shape("S5.LARGE8") == Shape("S5", 4, 8.0)
    assert shape("sa2.2xlarge16") == Shape("SA2", 8, 16.0)
    assert shape("M5.XLARGE") == Shape("M5", 4, None)
    assert shape("S5.MEDIUM4").vcpu == 2
    assert eni_quota("SA2.2XLARGE16") == (6, 20)  # facts: SA2 8 cores -> 95 pods
    for bad in ("S5", "S5.", "S5.HUGE8", "5S.LARGE8", "S5.0XLARGE8", ""):
        with pytest.raises(ValueError, match="invalid instance type"):
            shape(bad)


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "10.0.32.0/20", "10.0.33.0/24", "192.168.7.16/28"])
def test_subnet_arithmetic_agrees_with_the_clients(cidr: str) -> None:
    assert addressing.usable_count(cidr) == client_cidr.usable_count(cidr)
    assert addressing.gateway(cidr) == str(client_cidr.gateway(cidr))
    assert addressing.netmask(cidr) == client_cidr.netmask(cidr)
    first = next(client_cidr.usable_hosts(cidr))
    assert addressing.first_usable(cidr) == int(first)
    net = addressing.subnet_block(cidr)
    probes = [net.network_address, net.network_address + 1, net.network_address + 2]
    probes += [net.broadcast_address - 1, net.broadcast_address, net.broadcast_address + 1]
    for probe in [str(p) for p in probes] + ["not-an-ip", "10.0.0.300"]:
        assert addressing.in_block(cidr, probe) == client_cidr.contains(cidr, probe), probe
        assert addressing.is_usable(cidr, probe) == client_cidr.is_usable(cidr, probe), probe


@pytest.mark.parametrize("cidr", ["10.0.0.0/15", "10.0.0.0/29", "10.0.0.1/24", "nope"])
def test_bad_subnet_blocks(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid subnet CIDR"):
        addressing.subnet_block(cidr)


def test_allowance_refuses_over_the_limit_and_refills() -> None:
    now = [100.0]
    allowance = PerActionAllowance({"DescribeSubnets": 4}, default=2, clock=lambda: now[0])
    assert [allowance.admit("DescribeSubnets") for _ in range(5)] == [True] * 4 + [False]
    assert [allowance.admit("Other") for _ in range(3)] == [True, True, False]
    now[0] += 0.5  # half a second gives back half the limit
    assert [allowance.admit("DescribeSubnets") for _ in range(3)] == [True, True, False]
    assert allowance.limit("Other") == 2
    assert PerActionAllowance().limit("DescribeVpcs") == UNDOCUMENTED_LIMIT


def test_allowance_refuses_a_bad_limit() -> None:
    with pytest.raises(ValueError, match="rate limit of X must be positive"):
        PerActionAllowance({"X": 0})
