"""Named cloud latency profiles: how long each API call takes to answer and how
long each asynchronous task stays RUNNING, per action (docs/cloud.md "Latency
profiles", with the sources and assumptions behind every figure).

A profile is chosen through the fault knobs: ``{"profile": "cloud"}`` in
``--faults``, ``POST /_admin/faults`` or ``tke-vpcsim faults``. Choosing one
fills ``call_ms``, ``task_ms`` and ``jitter_ratio``; ``{"profile": ""}`` clears
them. The figures are per action, with ``"*"`` as the default for actions not
named."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT = "*"


@dataclass(frozen=True)
class LatencyProfile:
    name: str
    summary: str
    call_ms: Mapping[str, float] = field(default_factory=dict)  # answer time per call
    task_ms: Mapping[str, float] = field(default_factory=dict)  # async task duration
    jitter_ratio: float = 0.0  # each figure drawn uniformly in [1 - j, 1 + j] x figure


def figure(table: Mapping[str, float], action: str, fallback: float = 0.0) -> float:
    """The action's figure, else the table's ``"*"``, else ``fallback``."""
    if action in table:
        return table[action]
    return table.get(DEFAULT, fallback)


def jittered(value_ms: float, jitter_ratio: float, rng: random.Random) -> float:
    """``value_ms`` spread uniformly by ``jitter_ratio`` (never negative)."""
    if value_ms <= 0 or jitter_ratio <= 0:
        return max(0.0, value_ms)
    return max(0.0, value_ms * rng.uniform(1 - jitter_ratio, 1 + jitter_ratio))


def check_table(name: str, value: object) -> dict[str, float]:
    """A {action: milliseconds} table, or ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"fault {name!r} must be an object of action -> milliseconds")
    out: dict[str, float] = {}
    for action, ms in value.items():
        if not isinstance(action, str) or not action:
            raise ValueError(f"fault {name!r}: action names must be non-empty strings")
        if isinstance(ms, bool) or not isinstance(ms, int | float):
            raise ValueError(f"fault {name!r}: {action} must be a number of milliseconds")
        if ms < 0:
            raise ValueError(f"fault {name!r}: {action} must not be negative, got {ms}")
        out[action] = float(ms)
    return out


_DESCRIBE = ("DescribeNetworkInterfaces", "DescribeNetworkInterfaceLimit", "DescribeSubnets",
             "DescribeVpcTaskResult", "DescribeInstances", "DescribeVpcs",
             "DescribeSecurityGroups", "DescribeRouteTables", "DescribeRegions",
             "DescribeZones", "DescribeSecurityGroupPolicies")

#: A region's public API endpoint reached from a node in that region: a signed
#: HTTPS request answers in tens of milliseconds for reads and ~100-200 ms for
#: writes; an ENI takes a second or two to exist and two to three to be attached
#: (hot-plugged into a running VM), an IP assignment under a second. Assumptions
#: (Tencent Cloud publishes no latency figures; its API docs only say these calls
#: are asynchronous): see docs/cloud.md "Latency profiles".
CLOUD = LatencyProfile(
    name="cloud",
    summary="a region's API seen from a node in it: typical figures (assumed, docs/cloud.md)",
    call_ms={
        DEFAULT: 60.0,
        **dict.fromkeys(_DESCRIBE, 40.0),
        "CreateNetworkInterface": 150.0,
        "AttachNetworkInterface": 120.0,
        "DetachNetworkInterface": 120.0,
        "DeleteNetworkInterface": 120.0,
        "AssignPrivateIpAddresses": 100.0,
        "UnassignPrivateIpAddresses": 100.0,
        "MigratePrivateIpAddress": 100.0,
    },
    task_ms={
        DEFAULT: 500.0,
        "CreateNetworkInterface": 1000.0,
        "AttachNetworkInterface": 2500.0,
        "DetachNetworkInterface": 2000.0,
        "DeleteNetworkInterface": 800.0,
        "AssignPrivateIpAddresses": 500.0,
        "UnassignPrivateIpAddresses": 400.0,
        "MigratePrivateIpAddress": 600.0,
    },
    jitter_ratio=0.3,
)

#: The same calls on a bad day: every figure x3 (a busy region, a slow hot-plug).
CLOUD_SLOW = LatencyProfile(
    name="cloud-slow",
    summary="the cloud profile x3: a busy region, a slow attach (assumed, docs/cloud.md)",
    call_ms={k: 3 * v for k, v in CLOUD.call_ms.items()},
    task_ms={k: 3 * v for k, v in CLOUD.task_ms.items()},
    jitter_ratio=0.3,
)

NONE = LatencyProfile(name="none", summary="no added latency (the emulator's default)")

PROFILES: dict[str, LatencyProfile] = {p.name: p for p in (NONE, CLOUD, CLOUD_SLOW)}


def get(name: str) -> LatencyProfile:
    """The named profile ("" means none); ValueError listing the known names."""
    profile = PROFILES.get(name or "none")
    if profile is None:
        raise ValueError(f"unknown latency profile {name!r}; known: {sorted(PROFILES)}")
    return profile
