"""ipamd.rules.secgroups: the override's validation, the target in force, and
the (dis)associate plan under the API's append semantics (checked against
every ordered list of up to 3 groups out of 5, and lists of up to 5)."""

from __future__ import annotations

import itertools

import pytest

from ipamd.rules import secgroups as sg

A, B, C, D, E, F = (f"sg-0000000{i}" for i in "abcdef")


def _run(current: list[str], steps: list[sg.Step], limit: int = sg.MAX_GROUPS) -> list[list[str]]:
    """The ENI's groups after each step (as the emulator applies them)."""
    seen: list[list[str]] = []
    cur = list(current)
    for s in steps:
        if s.action == sg.ASSOCIATE:
            cur = cur + [g for g in s.groups if g not in cur]
        else:
            assert set(s.groups) <= set(cur), "disassociates only what the ENI holds"
            cur = [g for g in cur if g not in s.groups]
        assert len(cur) <= limit
        seen.append(cur)
    return seen


def _lists(universe: list[str], most: int) -> list[list[str]]:
    return [list(p) for n in range(most + 1) for p in itertools.permutations(universe, n)]


def test_plan_reaches_every_target_and_never_leaves_an_eni_bare() -> None:
    universe = [A, B, C, D, E]
    for current in _lists(universe, 3):
        for target in _lists(universe, 3):
            steps = sg.plan(current, target)
            states = _run(current, steps)
            assert (states[-1] if states else current) == target, (current, target, steps)
            if target:
                assert all(states), (current, target, states)
            assert len(steps) <= 3


def test_plan_with_full_enis() -> None:
    for current in ([A, B, C, D, E], [E, D, C, B, A]):
        for target in ([F], [F, A, B, C, D], [A, B, C, D, E], [B, A], [E, D, C, B, A]):
            states = _run(current, sg.plan(current, target))
            assert (states[-1] if states else current) == target
            assert all(states)


def test_plan_shapes() -> None:
    assert sg.plan([A, B], [A, B]) == []
    assert sg.plan([], [A, B]) == [sg.Step(sg.ASSOCIATE, (A, B))]
    assert sg.plan([A], [A, B]) == [sg.Step(sg.ASSOCIATE, (B,))]
    # order fixed by removing what breaks it and appending again
    assert sg.plan([B, A], [A, B]) == [
        sg.Step(sg.DISASSOCIATE, (B,)),
        sg.Step(sg.ASSOCIATE, (B,)),
    ]
    # nothing of the head held: the head goes on first
    assert sg.plan([C], [A, B]) == [
        sg.Step(sg.ASSOCIATE, (A,)),
        sg.Step(sg.DISASSOCIATE, (C,)),
        sg.Step(sg.ASSOCIATE, (B,)),
    ]
    assert sg.plan([A, B], []) == [sg.Step(sg.DISASSOCIATE, (A, B))]
    with pytest.raises(ValueError, match="not a valid list"):
        sg.plan([], [A, A])


@pytest.mark.parametrize(
    ("raw", "groups", "problem"),
    [
        (None, None, ""),
        ([], None, ""),
        ([B, A], (B, A), ""),
        ("sg-0000000a", None, "must be a list"),
        ([1], None, "must be a list"),
        (["sg-1"], None, "'sg-1' is not a security group id"),
        (["SG-0000000A"], None, "is not a security group id"),
        ([A, A], None, "repeats a group"),
        ([A, B, C, D, E, F], None, "at most 5"),
    ],
)
def test_parse_override(raw: object, groups: tuple[str, ...] | None, problem: str) -> None:
    got, why = sg.parse_override(raw)
    assert got == groups
    assert (problem in why) if problem else why == ""


def test_resolve_keeps_the_previous_target_on_a_bad_override() -> None:
    node = [A]
    assert sg.resolve(node, None, None) == (sg.Target((A,), sg.SOURCE_NODE), "")
    assert sg.resolve(node, [C, B], None) == (sg.Target((C, B), sg.SOURCE_NEC), "")
    prev = sg.Target((C, B), sg.SOURCE_NEC)
    target, problem = sg.resolve(node, ["bad"], prev)
    assert target == prev and "not a security group id" in problem
    # a previous target that followed the node follows its current groups
    target, problem = sg.resolve([D], ["bad"], sg.Target((A,), sg.SOURCE_NODE))
    assert target == sg.Target((D,), sg.SOURCE_NODE) and problem


def test_nec_records_and_status() -> None:
    obj = {
        "metadata": {"name": "n1", "uid": "u1"},
        "spec": {"nodeName": "n1", "securityGroupIds": [A]},
        "status": {"securityGroupIds": [B], "securityGroupSource": "nodeENIConfig"},
    }
    rec = sg.sg_nec_from_obj(obj)
    assert rec == sg.SgNecRec("n1", "u1", [A], ((B,), sg.SOURCE_NEC, ""))
    assert sg.from_status(rec.status) == sg.Target((B,), sg.SOURCE_NEC)
    assert sg.from_status(((B,), "elsewhere", "")) is None
    assert sg.from_status((("bad",), sg.SOURCE_NEC, "")) is None
    assert sg.sg_nec_from_obj({"metadata": {"name": "n2"}}).override is None
