"""Subnet math: usable addresses exclude network, gateway (.1) and broadcast."""

from __future__ import annotations

import ipaddress

import pytest

from core import cidr


@pytest.mark.parametrize(
    ("block", "usable"),
    [("10.0.0.0/24", 253), ("10.0.0.0/28", 13), ("10.0.0.0/16", 65533), ("10.0.32.0/20", 4093)],
)
def test_usable_count(block: str, usable: int) -> None:
    assert cidr.usable_count(block) == usable
    assert sum(1 for _ in cidr.usable_hosts(block)) == usable


def test_usable_hosts_skip_reserved() -> None:
    hosts = list(cidr.usable_hosts("10.0.3.0/28"))
    assert str(hosts[0]) == "10.0.3.2"
    assert str(hosts[-1]) == "10.0.3.14"


def test_gateway_netmask_reserved() -> None:
    assert str(cidr.gateway("10.0.3.0/24")) == "10.0.3.1"
    assert cidr.netmask("10.0.32.0/20") == "255.255.240.0"
    assert cidr.reserved("10.0.3.0/24") == frozenset(
        ipaddress.IPv4Address(a) for a in ("10.0.3.0", "10.0.3.1", "10.0.3.255")
    )


@pytest.mark.parametrize(
    ("ip", "inside", "usable"),
    [
        ("10.0.3.2", True, True),
        ("10.0.3.254", True, True),
        ("10.0.3.0", True, False),
        ("10.0.3.1", True, False),
        ("10.0.3.255", True, False),
        ("10.0.4.2", False, False),
        ("not-an-ip", False, False),
        ("", False, False),
    ],
)
def test_contains_and_usable(ip: str, inside: bool, usable: bool) -> None:
    assert cidr.contains("10.0.3.0/24", ip) is inside
    assert cidr.is_usable("10.0.3.0/24", ip) is usable


@pytest.mark.parametrize(
    "bad", ["10.0.0.0/8", "10.0.0.0/29", "10.0.0.1/24", "garbage", "10.0.0.0/33", "::/64"]
)
def test_invalid_subnets_named(bad: str) -> None:
    with pytest.raises(cidr.CidrError) as err:
        cidr.parse_subnet(bad)
    assert repr(bad) in str(err.value)
