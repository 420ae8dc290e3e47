"""ENI limits per instance type and the pod capacity they give.

Lookup rule (documented in the README):
1. rows of the instance's family (case-insensitive) whose vCPU column equals
   the vCPU count, or is ``>N`` with vCPU > N, and whose memory condition
   holds (empty = any);
2. else the family's largest listed vCPU row below the vCPU count (a size the
   table does not list gets the quota of the next smaller listed size: never
   more than published);
3. else the generic ``*`` rule, by the same two steps;
4. else (nothing smaller than a 1-vCPU row exists) the smallest generic row.

Max pods (shared-ENI mode, as TKE's DescribeVpcCniPodLimits publishes):
(ENIs − 1) × (IPs per ENI − 1): the primary ENI and each ENI's primary IP
are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from core.eni_limits_table import ENI_LIMITS_CSV
from core.instance_type import InstanceType, parse_instance_type

GENERIC_FAMILY = "*"


@dataclass(frozen=True, slots=True)
class EniLimits:
    """ENIs an instance may hold and private IPs per ENI (primary included)."""

    enis: int
    ips_per_eni: int
    source: str = "table"  # "table", "generic", "api", "override"

    def __post_init__(self) -> None:
        if self.enis < 1 or self.ips_per_eni < 1:
            raise ValueError(f"invalid ENI limits: {self.enis} ENIs x {self.ips_per_eni} IPs")

    @property
    def max_pods(self) -> int:
        return max_pods(self.enis, self.ips_per_eni)


def max_pods(enis: int, ips_per_eni: int) -> int:
    """(ENIs − 1) × (IPs per ENI − 1), never negative."""
    return max(0, enis - 1) * max(0, ips_per_eni - 1)


@dataclass(frozen=True, slots=True)
class _Row:
    family: str
    vcpu_min_exclusive: int | None  # ">N" rows
    vcpu: int | None  # exact rows
    mem_op: str  # "", "==", ">", "<="
    mem: float
    enis: int
    ips: int

    def vcpu_matches(self, vcpu: int) -> bool:
        if self.vcpu is not None:
            return self.vcpu == vcpu
        assert self.vcpu_min_exclusive is not None
        return vcpu > self.vcpu_min_exclusive

    def mem_matches(self, memory_gib: float | None) -> bool:
        if not self.mem_op:
            return True
        if memory_gib is None:
            return False
        if self.mem_op == "==":
            return memory_gib == self.mem
        if self.mem_op == ">":
            return memory_gib > self.mem
        return memory_gib <= self.mem

    @property
    def sort_vcpu(self) -> int:
        return self.vcpu if self.vcpu is not None else (self.vcpu_min_exclusive or 0) + 1


def _parse_mem(text: str) -> tuple[str, float]:
    text = text.strip()
    if not text:
        return "", 0.0
    for op in ("<=", ">"):
        if text.startswith(op):
            return op, float(text[len(op) :])
    return "==", float(text)


@cache
def _rows() -> tuple[_Row, ...]:
    rows: list[_Row] = []
    lines = ENI_LIMITS_CSV.strip().splitlines()
    header = lines[0].split(",")
    if header != ["family", "vcpu", "memory_gib", "enis", "ips_per_eni"]:
        raise ValueError(f"unexpected ENI limits header: {header}")
    for line in lines[1:]:
        family, vcpu, mem, enis, ips = (c.strip() for c in line.split(","))
        op, mem_v = _parse_mem(mem)
        if vcpu.startswith(">"):
            row = _Row(family.upper(), int(vcpu[1:]), None, op, mem_v, int(enis), int(ips))
        else:
            row = _Row(family.upper(), None, int(vcpu), op, mem_v, int(enis), int(ips))
        rows.append(row)
    return tuple(rows)


def known_families() -> frozenset[str]:
    return frozenset(r.family for r in _rows() if r.family != GENERIC_FAMILY)


def _lookup_family(family: str, vcpu: int, memory_gib: float | None) -> _Row | None:
    rows = [r for r in _rows() if r.family == family]
    if not rows:
        return None
    for r in rows:
        if r.vcpu_matches(vcpu) and r.mem_matches(memory_gib):
            return r
    smaller = [r for r in rows if r.sort_vcpu < vcpu and r.mem_matches(memory_gib)]
    smaller = smaller or [r for r in rows if r.sort_vcpu < vcpu]
    if smaller:
        return max(smaller, key=lambda r: (r.sort_vcpu, r.enis, r.ips))
    return None


def limits_for(instance: InstanceType) -> EniLimits:
    """ENI limits for a parsed instance type, from the table (see module doc)."""
    row = _lookup_family(instance.family.upper(), instance.vcpu, instance.memory_gib)
    if row is not None:
        return EniLimits(row.enis, row.ips, "table")
    row = _lookup_family(GENERIC_FAMILY, instance.vcpu, instance.memory_gib)
    if row is None:
        generic = [r for r in _rows() if r.family == GENERIC_FAMILY]
        row = min(generic, key=lambda r: (r.sort_vcpu, r.enis, r.ips))
    return EniLimits(row.enis, row.ips, "generic")


def limits_for_type(instance_type: str) -> EniLimits:
    """ENI limits for an instance type name such as ``S5.LARGE8``."""
    return limits_for(parse_instance_type(instance_type))
