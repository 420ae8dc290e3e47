"""Per-node warm targets (NodeENIConfig annotations) and quick release: the
pure rules of ipamd.rules.warm."""

from __future__ import annotations

import pytest

from ipamd.config import load
from ipamd.rules.pool import PoolTargets
from ipamd.rules.warm import (
    ANN_MAX_WARM,
    ANN_MIN_WARM,
    SOURCE_ANNOTATION,
    SOURCE_GLOBAL,
    WarmTargets,
    from_status,
    nec_from_obj,
    resolve,
    trim_count,
)

GLOBAL = PoolTargets(5, 5)


def test_no_annotation_is_global() -> None:
    assert resolve({}, GLOBAL, 30).value == WarmTargets(GLOBAL, SOURCE_GLOBAL)
    assert resolve(None, GLOBAL, 30).value == WarmTargets(GLOBAL, SOURCE_GLOBAL)
    assert resolve({"other": "x"}, GLOBAL, 30).value == WarmTargets(GLOBAL, SOURCE_GLOBAL)


def test_both_annotations() -> None:
    got = resolve({ANN_MIN_WARM: "2", ANN_MAX_WARM: "8"}, GLOBAL, 30)
    assert got.problem == ""
    assert got.value == WarmTargets(PoolTargets(2, 8), SOURCE_ANNOTATION)


def test_one_annotation_falls_back_to_global_for_the_other() -> None:
    assert resolve({ANN_MAX_WARM: "9"}, GLOBAL, 30).value == WarmTargets(
        PoolTargets(5, 9), SOURCE_ANNOTATION
    )
    assert resolve({ANN_MIN_WARM: " 0 "}, GLOBAL, 30).value == WarmTargets(
        PoolTargets(0, 5), SOURCE_ANNOTATION
    )


def test_limit_itself_is_allowed() -> None:
    assert resolve({ANN_MIN_WARM: "30", ANN_MAX_WARM: "30"}, GLOBAL, 30).value is not None


@pytest.mark.parametrize(
    ("ann", "words"),
    [
        ({ANN_MIN_WARM: "two"}, f"{ANN_MIN_WARM}='two' is not an integer"),
        ({ANN_MAX_WARM: "1.5"}, "is not an integer"),
        ({ANN_MAX_WARM: ""}, "is not an integer"),
        ({ANN_MAX_WARM: "٣"}, "is not an integer"),  # a non-ASCII digit
        ({ANN_MIN_WARM: "-1"}, f"{ANN_MIN_WARM}='-1' is negative"),
        ({ANN_MIN_WARM: "6", ANN_MAX_WARM: "3"}, "min warm target 6 exceeds max warm target 3"),
        ({ANN_MIN_WARM: "7"}, "min warm target 7 exceeds max warm target 5"),
        ({ANN_MAX_WARM: "31"}, f"{ANN_MAX_WARM}=31 is above the node's limit of 30 IPs"),
    ],
)
def test_bad_values_name_the_problem(ann: dict[str, str], words: str) -> None:
    got = resolve(ann, GLOBAL, 30)
    assert got.value is None
    assert words in got.problem


def test_every_problem_is_named() -> None:
    got = resolve({ANN_MIN_WARM: "x", ANN_MAX_WARM: "-2"}, GLOBAL, 30)
    assert got.value is None
    assert ANN_MIN_WARM in got.problem and ANN_MAX_WARM in got.problem


def test_trim_count() -> None:
    assert trim_count(0, quick=True) == 0
    assert trim_count(-3, quick=True) == 0
    assert trim_count(7, quick=False) == 1
    assert trim_count(7, quick=True) == 7


def test_nec_from_obj_keeps_only_warm_annotations() -> None:
    rec = nec_from_obj(
        {
            "metadata": {
                "name": "n1",
                "uid": "u1",
                "annotations": {ANN_MAX_WARM: "8", "kubectl.kubernetes.io/x": "y"},
            },
            "status": {"minWarmTarget": 5, "maxWarmTarget": 8, "source": "annotation"},
        }
    )
    assert rec.name == "n1" and rec.uid == "u1"
    assert rec.annotations == ((ANN_MAX_WARM, "8"),)
    assert rec.status == (5, 8, "annotation", "")
    assert nec_from_obj({"metadata": {"name": "n2"}}).status is None


def test_quick_release_flag() -> None:
    assert load(["--clusterid", "cls-ab12cd34"], env={}).enable_quick_release is False
    s = load(["--clusterid", "cls-ab12cd34", "--enable-quick-release"], env={})
    assert s.enable_quick_release is True
    s = load(["--clusterid", "cls-ab12cd34", "--enable-quick-release=false"], env={})
    assert s.enable_quick_release is False


def test_from_status() -> None:
    assert from_status((3, 4, "annotation", "bad")) == WarmTargets(
        PoolTargets(3, 4), SOURCE_ANNOTATION
    )
    assert from_status((5, 5, "global", "")) == WarmTargets(PoolTargets(5, 5), SOURCE_GLOBAL)
    assert from_status(None) is None
    assert from_status((5, 4, "annotation", "")) is None
    assert from_status((-1, 4, "annotation", "")) is None
    assert from_status((1, 4, "somewhere", "")) is None
