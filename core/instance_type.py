"""Tencent CVM instance type names: ``<FAMILY>.<SIZE><MEMORY_GIB>``.

Examples: ``S5.LARGE8`` (S5, 4 vCPU, 8 GiB), ``SA2.2XLARGE16`` (SA2, 8 vCPU,
16 GiB), ``M5.4XLARGE64`` (M5, 16 vCPU, 64 GiB).

Size-name → vCPU rule (Tencent's naming): SMALL = 1, MEDIUM = 2, LARGE = 4,
``NXLARGE`` = 4 × N (so 2XLARGE = 8, 3XLARGE = 12, 4XLARGE = 16, 8XLARGE = 32,
XLARGE alone = 4). The trailing number is the memory in GiB; a missing one
means "unknown memory" (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE_VCPU = {"SMALL": 1, "MEDIUM": 2, "LARGE": 4}


class InstanceTypeError(ValueError):
    """An instance type that does not follow ``FAMILY.SIZEmemory``."""


@dataclass(frozen=True, slots=True)
class InstanceType:
    family: str
    vcpu: int
    memory_gib: float | None
    name: str


def parse_instance_type(name: str) -> InstanceType:
    """Parse ``S5.LARGE8`` and friends; raise InstanceTypeError naming the value."""
    text = name.strip()
    family_part, dot, size_part = text.partition(".")
    if not dot or not family_part or not size_part:
        raise InstanceTypeError(
            f"invalid instance type {name!r}: expected FAMILY.SIZE<memory>, e.g. S5.LARGE8"
        )
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", family_part):
        raise InstanceTypeError(f"invalid instance type {name!r}: bad family {family_part!r}")
    m = re.fullmatch(
        r"(?:(?P<mult>[0-9]+)?(?P<xl>XLARGE)|(?P<size>SMALL|MEDIUM|LARGE))(?P<mem>[0-9]+(?:\.[0-9]+)?)?",
        size_part.upper(),
    )
    if m is None:
        raise InstanceTypeError(
            f"invalid instance type {name!r}: size {size_part!r} is not "
            "SMALL/MEDIUM/LARGE/<N>XLARGE followed by memory GiB"
        )
    if m.group("xl"):
        mult = int(m.group("mult") or "1")
        if mult <= 0:
            raise InstanceTypeError(f"invalid instance type {name!r}: {mult}XLARGE")
        vcpu = 4 * mult
    else:
        vcpu = _SIZE_VCPU[m.group("size")]
    mem = float(m.group("mem")) if m.group("mem") else None
    return InstanceType(family=family_part, vcpu=vcpu, memory_gib=mem, name=text)
