"""ENI limits per instance type, table-driven (core.limits, core.instance_type)."""

from __future__ import annotations

import pytest

from core.instance_type import InstanceTypeError, parse_instance_type
from core.limits import EniLimits, known_families, limits_for_type, max_pods

CASES = [
    # type, enis, ips per ENI, max pods, source
    ("S5.LARGE8", 4, 10, 27, "table"),
    ("S5.SMALL1", 2, 6, 5, "table"),
    ("S5.MEDIUM4", 4, 10, 27, "table"),
    ("S5.2XLARGE16", 6, 20, 95, "table"),
    ("S5.4XLARGE64", 8, 30, 203, "table"),
    ("S5.8XLARGE128", 8, 30, 203, "table"),  # >16 row
    ("S5.3XLARGE24", 6, 20, 95, "table"),  # 12 vCPU unlisted: next smaller row (8)
    ("s5.large8", 4, 10, 27, "table"),  # case-insensitive
    ("S5se.LARGE8", 4, 20, 57, "table"),
    ("SA2.SMALL1", 2, 6, 5, "table"),  # SA2 1 core → 5 pods
    ("SA2.SMALL2", 2, 6, 5, "table"),
    ("SA2.MEDIUM4", 4, 10, 27, "table"),  # SA2 2 cores → 27
    ("SA2.LARGE8", 4, 10, 27, "table"),  # SA2 4 cores → 27
    ("SA2.2XLARGE16", 6, 20, 95, "table"),  # SA2 8 cores → 95
    ("SA2.4XLARGE32", 8, 30, 203, "table"),
    ("SA2.8XLARGE64", 8, 30, 203, "table"),
    ("M5.4XLARGE64", 8, 30, 203, "table"),
    ("M5.3XLARGE48", 8, 30, 203, "table"),  # M5 lists 12 vCPU
    ("M5.SMALL8", 2, 6, 5, "table"),
    ("C3.LARGE8", 4, 10, 27, "table"),
    ("C3.2XLARGE16", 6, 20, 95, "table"),
    ("SA1.SMALL1", 2, 2, 1, "table"),  # memory-conditioned rows
    ("SA1.SMALL2", 2, 6, 5, "table"),
    ("SA1.LARGE8", 4, 10, 27, "table"),
    ("SA1.LARGE16", 4, 20, 57, "table"),
    ("SN3ne.3XLARGE24", 8, 30, 203, "table"),
    ("GN7.2XLARGE32", 6, 20, 95, "table"),
    # unknown families: the generic rule
    ("ZZ9.SMALL1", 2, 2, 1, "generic"),
    ("ZZ9.SMALL2", 2, 6, 5, "generic"),
    ("ZZ9.MEDIUM4", 2, 10, 9, "generic"),
    ("ZZ9.LARGE8", 4, 10, 27, "generic"),
    ("ZZ9.LARGE16", 4, 10, 27, "generic"),
    ("ZZ9.LARGE32", 4, 20, 57, "generic"),
    ("ZZ9.2XLARGE16", 6, 20, 95, "generic"),
    ("ZZ9.3XLARGE24", 6, 20, 95, "generic"),
    ("ZZ9.4XLARGE64", 8, 30, 203, "generic"),
    ("S6.LARGE8", 4, 10, 27, "generic"),  # newer family not in any table
    ("SA3.2XLARGE16", 6, 20, 95, "generic"),
]


@pytest.mark.parametrize(("itype", "enis", "ips", "pods", "source"), CASES)
def test_limits_for_type(itype: str, enis: int, ips: int, pods: int, source: str) -> None:
    got = limits_for_type(itype)
    assert (got.enis, got.ips_per_eni, got.source) == (enis, ips, source)
    assert got.max_pods == pods


@pytest.mark.parametrize(
    ("enis", "ips", "pods"),
    [(4, 10, 27), (2, 6, 5), (6, 20, 95), (8, 30, 203), (1, 30, 0), (2, 1, 0), (3, 2, 2)],
)
def test_max_pods_formula(enis: int, ips: int, pods: int) -> None:
    assert max_pods(enis, ips) == pods == (enis - 1) * (ips - 1)


def test_max_pods_never_negative() -> None:
    assert max_pods(0, 0) == 0


@pytest.mark.parametrize(("enis", "ips"), [(0, 10), (4, 0), (-1, 5)])
def test_invalid_limits_refused(enis: int, ips: int) -> None:
    with pytest.raises(ValueError, match="invalid ENI limits"):
        EniLimits(enis, ips)


@pytest.mark.parametrize(
    ("name", "family", "vcpu", "mem"),
    [
        ("S5.LARGE8", "S5", 4, 8.0),
        ("SA2.2XLARGE16", "SA2", 8, 16.0),
        ("M5.4XLARGE64", "M5", 16, 64.0),
        ("S5.XLARGE", "S5", 4, None),
        ("S5.SMALL1", "S5", 1, 1.0),
        ("S5.MEDIUM2", "S5", 2, 2.0),
        ("S5.16XLARGE256", "S5", 64, 256.0),
        ("SA2.LARGE0.5", "SA2", 4, 0.5),
        (" S5.LARGE8 ", "S5", 4, 8.0),
    ],
)
def test_parse_instance_type(name: str, family: str, vcpu: int, mem: float | None) -> None:
    t = parse_instance_type(name)
    assert (t.family, t.vcpu, t.memory_gib) == (family, vcpu, mem)


@pytest.mark.parametrize(
    "bad", ["", "S5", "S5.", ".LARGE8", "S5.HUGE8", "5S.LARGE8", "S5.0XLARGE8", "S5.LARGE8X"]
)
def test_parse_instance_type_errors_name_the_value(bad: str) -> None:
    with pytest.raises(InstanceTypeError) as err:
        parse_instance_type(bad)
    assert repr(bad) in str(err.value)


def test_known_families() -> None:
    fams = known_families()
    assert {"S5", "SA2", "M5", "S5SE"} <= fams
    assert "*" not in fams
