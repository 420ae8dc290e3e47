"""Subnet arithmetic for VPC subnets.

Reserved-address rule (Tencent Cloud VPC): in every subnet the network
address, the first host address (the subnet gateway, ``x.x.x.1`` in a /24) and
the broadcast (last) address are reserved, so a subnet of 2^(32-p) addresses
has 2^(32-p) − 3 usable ones. VPC subnets are /16 to /28.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

MIN_PREFIX = 16
MAX_PREFIX = 28
RESERVED_PER_SUBNET = 3


class CidrError(ValueError):
    """A CIDR that is not a valid VPC subnet block."""


def parse_subnet(cidr: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(cidr.strip(), strict=True)
    except ValueError as exc:
        raise CidrError(f"invalid subnet CIDR {cidr!r}: {exc}") from exc
    if not MIN_PREFIX <= net.prefixlen <= MAX_PREFIX:
        raise CidrError(
            f"invalid subnet CIDR {cidr!r}: prefix /{net.prefixlen} "
            f"outside /{MIN_PREFIX}../{MAX_PREFIX}"
        )
    return net


def gateway(cidr: str) -> ipaddress.IPv4Address:
    """The subnet's gateway: its first host address."""
    return parse_subnet(cidr).network_address + 1


def reserved(cidr: str) -> frozenset[ipaddress.IPv4Address]:
    net = parse_subnet(cidr)
    return frozenset({net.network_address, net.network_address + 1, net.broadcast_address})


def usable_count(cidr: str) -> int:
    return parse_subnet(cidr).num_addresses - RESERVED_PER_SUBNET


def usable_hosts(cidr: str) -> Iterator[ipaddress.IPv4Address]:
    """Usable addresses in ascending order (gateway and broadcast excluded)."""
    net = parse_subnet(cidr)
    first = int(net.network_address) + 2
    last = int(net.broadcast_address) - 1
    for value in range(first, last + 1):
        yield ipaddress.IPv4Address(value)


def contains(cidr: str, ip: str) -> bool:
    try:
        return ipaddress.IPv4Address(ip) in parse_subnet(cidr)
    except ValueError:
        return False


def is_usable(cidr: str, ip: str) -> bool:
    """In the subnet and not one of its reserved addresses."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return addr in parse_subnet(cidr) and addr not in reserved(cidr)


def netmask(cidr: str) -> str:
    return str(parse_subnet(cidr).netmask)
