"""Pure: which security groups a node's ENIs should hold, and the calls that
bring an ENI's ordered list there.

The target is the node's groups (those of its instance's primary ENI, in
order: the first has the highest priority), or the per-node override
``spec.securityGroupIds`` of its NodeENIConfig. A bad override (not a list
of ``sg-`` ids, repeated, more than ``MAX_GROUPS``) is a problem: the caller
reports it and keeps the target the node had.

The API offers two incremental calls: associate *appends* the groups an ENI
does not hold yet (in the order given) and disassociate removes groups
keeping the others' order. So the order is reachable only by keeping the
longest head of the target the ENI already holds in order, removing every
other group, then appending the rest of the target. ``plan`` does that, and
never leaves an ENI that should hold groups with none in between (an ENI
without groups allows all traffic): when the ENI holds none of the target's
head it first appends that head, removing first only when the ENI is full.
Every step is computed from the ENI's groups as last described, so a crash
or an error between two steps leaves a state the next pass plans from."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

KIND_NEC = "NodeENIConfig"
FIELD_OVERRIDE = "securityGroupIds"  # in the nec's spec
MAX_GROUPS = 5  # an ENI holds at most five security groups
SG_ID_RE = re.compile(r"^sg-[0-9a-z]{8}$")
SOURCE_NODE = "node"
SOURCE_NEC = "nodeENIConfig"
ASSOCIATE = "associate"
DISASSOCIATE = "disassociate"


@dataclass(frozen=True, slots=True)
class Target:
    groups: tuple[str, ...]
    source: str  # SOURCE_NODE or SOURCE_NEC


@dataclass(frozen=True, slots=True)
class Step:
    action: str  # ASSOCIATE or DISASSOCIATE
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SgNecRec:
    """What the security-group controller reads of a nec: the override as
    written (``None``: absent) and the status it last wrote."""

    name: str
    uid: str
    override: object  # spec.securityGroupIds as found (None: absent)
    status: tuple[tuple[str, ...], str, str] | None  # (groups, source, message)


def parse_override(raw: object) -> tuple[tuple[str, ...] | None, str]:
    """(groups, "") for a good override, (None, "") when there is none (absent or
    an empty list: the node's groups), (None, problem) for a bad one."""
    if raw is None or raw == []:
        return None, ""
    where = f"spec.{FIELD_OVERRIDE}"
    if not isinstance(raw, list) or not all(isinstance(g, str) for g in raw):
        return None, f"{where} must be a list of security group ids, got {raw!r}"
    bad = [g for g in raw if not SG_ID_RE.match(g)]
    if bad:
        return None, (
            f"{where}: {', '.join(repr(g) for g in bad)} "
            "is not a security group id (sg- and 8 lower-case letters or digits)"
        )
    if len(set(raw)) != len(raw):
        return None, f"{where} repeats a group: {raw}"
    if len(raw) > MAX_GROUPS:
        return None, f"{where} names {len(raw)} groups; an ENI holds at most {MAX_GROUPS}"
    return tuple(raw), ""


def resolve(
    node_groups: Sequence[str], override: object, previous: Target | None
) -> tuple[Target, str]:
    """The node's target and the problem with its override ("" if none). On a
    problem the previous target stays (a previous one that followed the node
    follows its current groups); with none before, the node's groups."""
    groups, problem = parse_override(override)
    if groups is not None:
        return Target(groups, SOURCE_NEC), ""
    node = Target(tuple(node_groups), SOURCE_NODE)
    if not problem:
        return node, ""
    if previous is not None and previous.source == SOURCE_NEC:
        return previous, problem
    return node, problem


def held_head(current: Sequence[str], target: Sequence[str]) -> list[int]:
    """Indexes in ``current`` of the longest head of ``target`` that ``current``
    holds in the same order (greedy: the earliest match of each)."""
    out: list[int] = []
    j = 0
    for i, g in enumerate(current):
        if j < len(target) and g == target[j]:
            out.append(i)
            j += 1
    return out


def _apply(current: list[str], step: Step) -> list[str]:
    if step.action == ASSOCIATE:
        return current + [g for g in step.groups if g not in current]
    return [g for g in current if g not in step.groups]


def _next_step(cur: list[str], want: list[str], limit: int) -> Step:
    keep = held_head(cur, want)
    if not keep and cur and want:
        # holds none of the head: add it first, so no step leaves the ENI bare
        if len(cur) >= limit:
            return Step(DISASSOCIATE, tuple(cur[1:]))
        return Step(ASSOCIATE, (want[0],))
    extra = tuple(g for i, g in enumerate(cur) if i not in keep)
    if extra:
        return Step(DISASSOCIATE, extra)
    return Step(ASSOCIATE, tuple(want[len(keep) :]))


def plan(current: Sequence[str], target: Sequence[str], limit: int = MAX_GROUPS) -> list[Step]:
    """The (dis)associate calls, in order, that turn ``current`` into ``target``
    under the API's append semantics. Empty when they are equal."""
    if len(target) > limit or len(set(target)) != len(target):
        raise ValueError(f"target {list(target)} is not a valid list of at most {limit} groups")
    cur = list(current)
    want = list(target)
    steps: list[Step] = []
    while cur != want:
        step = _next_step(cur, want, limit)
        cur = _apply(cur, step)
        steps.append(step)
        if len(steps) > 2 * limit + 4:  # cannot happen: each step makes progress
            raise AssertionError(f"no plan from {list(current)} to {want}")
    return steps


def sg_nec_from_obj(obj: Mapping[str, object]) -> SgNecRec:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    spec = obj.get("spec")
    override = spec.get(FIELD_OVERRIDE) if isinstance(spec, dict) else None
    st = obj.get("status")
    status: tuple[tuple[str, ...], str, str] | None = None
    if isinstance(st, dict) and "securityGroupSource" in st:
        groups = st.get("securityGroupIds") or []
        status = (
            tuple(str(g) for g in groups) if isinstance(groups, list) else (),
            str(st.get("securityGroupSource") or ""),
            str(st.get("securityGroupMessage") or ""),
        )
    return SgNecRec(str(meta.get("name", "")), str(meta.get("uid") or ""), override, status)


def from_status(status: tuple[tuple[str, ...], str, str] | None) -> Target | None:
    """The target a nec's status says was in force (after a restart, the
    "previous" target a bad override keeps); None if it says nothing usable."""
    if status is None:
        return None
    groups, source, _ = status
    if source not in (SOURCE_NODE, SOURCE_NEC) or len(groups) > MAX_GROUPS:
        return None
    if not all(SG_ID_RE.match(g) for g in groups):
        return None
    return Target(groups, source)
