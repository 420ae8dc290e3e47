"""Instance types as the emulated cloud sells them: the name, the vCPU count and
memory it stands for, and the ENI quota that comes with it (what
``DescribeNetworkInterfaceLimit`` answers and what attach and assign enforce).

A name is ``FAMILY.SIZE<memory GiB>``: SMALL = 1 vCPU, MEDIUM = 2, LARGE = 4,
XLARGE = 4 and ``<N>XLARGE`` = 4 × N. The quota is the cloud's published one,
written here as size tiers per family: a tier applies from its vCPU count up to
the next tier (optionally only for some memory sizes). A type whose family is
not listed, or that is smaller than its family's first tier, gets the quota of
the generic tiers. The client keeps its own table; a unit test checks they
agree on every published row."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(
    r"(?P<family>[A-Za-z][A-Za-z0-9]*)\."
    r"(?:(?P<times>[1-9][0-9]*)?(?P<xl>XLARGE)|(?P<size>SMALL|MEDIUM|LARGE))"
    r"(?P<mem>[0-9]+(?:\.[0-9]+)?)?",
    re.IGNORECASE,
)
_SIZE_VCPU = {"SMALL": 1, "MEDIUM": 2, "LARGE": 4}


@dataclass(frozen=True)
class Shape:
    family: str
    vcpu: int
    memory_gib: float | None


@dataclass(frozen=True)
class Tier:
    from_vcpu: int
    enis: int  # primary ENI included
    ips_per_eni: int  # the ENI's primary IP included
    memory: str = ""  # "" any; "8" exactly; ">1" more than; "<=16" at most


def shape(name: str) -> Shape:
    """Family, vCPU and memory of ``name``; ValueError naming it if malformed."""
    m = _NAME.fullmatch(name.strip())
    if m is None:
        raise ValueError(
            f"invalid instance type {name!r}: expected FAMILY.SIZE<memory>, e.g. S5.LARGE8"
        )
    if m.group("xl"):
        vcpu = 4 * int(m.group("times") or "1")
    else:
        vcpu = _SIZE_VCPU[m.group("size").upper()]
    mem = float(m.group("mem")) if m.group("mem") else None
    return Shape(m.group("family").upper(), vcpu, mem)


def _t(*rows: tuple[int, int, int]) -> tuple[Tier, ...]:
    return tuple(Tier(v, e, i) for v, e, i in rows)


# 1 vCPU: 2 ENIs x 6 IPs; 2-7: 4 x 10; 8-15: 6 x 20; 16 and up: 8 x 30.
_STANDARD = _t((1, 2, 6), (2, 4, 10), (8, 6, 20), (16, 8, 30))
# The same, with 8 ENIs x 30 IPs from 12 vCPUs.
_STANDARD_12 = _t((1, 2, 6), (2, 4, 10), (8, 6, 20), (12, 8, 30))
# Compute and GPU sizes that start at 4 vCPUs.
_FROM_4 = _t((4, 4, 10), (8, 6, 20), (16, 8, 30))

GENERIC = (
    Tier(1, 2, 2, "1"),
    Tier(1, 2, 6, ">1"),
    Tier(2, 2, 10),
    Tier(4, 4, 10, "<=16"),
    Tier(4, 4, 20, ">16"),
    Tier(8, 6, 20),
    Tier(13, 8, 30),
)

FAMILIES: dict[str, tuple[Tier, ...]] = {
    "S5": _STANDARD,
    "SA2": _STANDARD,
    "S4": _STANDARD,
    "SN3NE": _STANDARD_12,
    "S3": _STANDARD_12,
    "S2": _STANDARD_12,
    "S1": _STANDARD_12,
    "M5": _STANDARD_12,
    "M4": _STANDARD_12,
    "M3": _STANDARD_12,
    "M2": _STANDARD_12,
    "M1": _STANDARD_12,
    "S5SE": _t((4, 4, 20), (8, 6, 20), (16, 8, 30)),
    "SA1": (
        Tier(1, 2, 2, "1"),
        Tier(1, 2, 6, ">1"),
        Tier(2, 2, 10),
        Tier(4, 4, 10, "8"),
        Tier(4, 4, 20, "16"),
        Tier(8, 6, 20),
        Tier(16, 8, 30),
    ),
    "IT5": _t((16, 8, 30)),
    "IT3": _t((16, 8, 30)),
    "C4": _FROM_4,
    "CN3": _FROM_4,
    "C3": _FROM_4,
    "C2": _FROM_4,
    "GN6": _t((17, 8, 30)),
    "GN6S": _t((4, 4, 10), (8, 6, 20)),
    "GN7": _t((4, 4, 10), (8, 6, 20), (17, 8, 30)),
    "GN8": _t((6, 4, 10), (14, 8, 30)),
    "GN10X": _t((8, 6, 20), (17, 8, 30)),
    "GN10XP": _t((10, 6, 20), (17, 8, 30)),
    "FX4": _t((10, 6, 20), (17, 8, 30)),
    "D3": _t((8, 6, 20), (16, 8, 30)),
    "D2": _t((8, 6, 20), (16, 8, 30)),
    "D1": _t((8, 6, 20), (17, 8, 30)),
}


def _memory_holds(rule: str, memory_gib: float | None) -> bool:
    if not rule:
        return True
    if memory_gib is None:
        return False
    if rule.startswith("<="):
        return memory_gib <= float(rule[2:])
    if rule.startswith(">"):
        return memory_gib > float(rule[1:])
    return memory_gib == float(rule)


def _tier(tiers: tuple[Tier, ...], s: Shape) -> Tier | None:
    reached = [t for t in tiers if t.from_vcpu <= s.vcpu]
    if not reached:
        return None
    top = max(t.from_vcpu for t in reached)
    at_top = [t for t in reached if t.from_vcpu == top]
    fitting = [t for t in at_top if _memory_holds(t.memory, s.memory_gib)]
    if fitting:
        return fitting[0]
    # no memory variant of this size fits: the largest smaller size that does
    lower = [t for t in reached if t.from_vcpu < top and _memory_holds(t.memory, s.memory_gib)]
    if lower:
        return max(lower, key=lambda t: t.from_vcpu)
    return None


def eni_quota(name: str) -> tuple[int, int]:
    """(ENIs, IPs per ENI) of an instance type; ValueError if the name is malformed."""
    return quota_of(shape(name))


def quota_of(s: Shape) -> tuple[int, int]:
    """(ENIs, IPs per ENI) of a family, vCPU count and memory."""
    tier = _tier(FAMILIES.get(s.family, ()), s) or _tier(GENERIC, s)
    if tier is None:  # smaller than every generic tier that fits its memory
        tier = GENERIC[0]
    return tier.enis, tier.ips_per_eni
