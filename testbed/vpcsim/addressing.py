"""Address arithmetic of the emulated VPC, with ``ipaddress`` only.

The cloud's rules: a subnet block is /16 to /28; in every subnet the network
address, the first host (the gateway) and the last address are reserved, so
the usable addresses run from network + 2 to broadcast − 1."""

from __future__ import annotations

import ipaddress

SMALLEST_PREFIX = 16
LARGEST_PREFIX = 28
RESERVED_PER_SUBNET = 3


def subnet_block(cidr: str) -> ipaddress.IPv4Network:
    """The block of a subnet; ValueError naming the value if it is not a /16../28."""
    try:
        net = ipaddress.IPv4Network(cidr.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid subnet CIDR {cidr!r}: {exc}") from exc
    if not SMALLEST_PREFIX <= net.prefixlen <= LARGEST_PREFIX:
        raise ValueError(
            f"invalid subnet CIDR {cidr!r}: a subnet is /{SMALLEST_PREFIX} to /{LARGEST_PREFIX}"
        )
    return net


def usable_count(cidr: str) -> int:
    return subnet_block(cidr).num_addresses - RESERVED_PER_SUBNET


def first_usable(cidr: str) -> int:
    """The first usable address as an integer (network + 2)."""
    return int(subnet_block(cidr).network_address) + 2


def gateway(cidr: str) -> str:
    return str(subnet_block(cidr).network_address + 1)


def netmask(cidr: str) -> str:
    return str(subnet_block(cidr).netmask)


def in_block(cidr: str, address: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in subnet_block(cidr)
    except ValueError:
        return False


def is_usable(cidr: str, address: str) -> bool:
    """In the block and not one of its reserved addresses."""
    if not in_block(cidr, address):
        return False
    value = int(ipaddress.IPv4Address(address))
    return first_usable(cidr) <= value <= int(subnet_block(cidr).broadcast_address) - 1
