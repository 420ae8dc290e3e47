"""ipamd.rules.pool: the next ENI attached ahead when the attached ones are
full (``needs_ahead_eni``), and the empty ENI spared from deletion
(``keep_ahead``)."""

from __future__ import annotations

import pytest

from ipamd.rules import pool
from ipamd.rules.pool import Ahead, EniView

LIMIT = 4  # ENIs per instance, the primary one included
CAP = 10  # IPs per ENI, primary included


def full(eni_id: str) -> EniView:
    return EniView(eni_id, "subnet-a", CAP, CAP - 1, CAP - 1)


def holding(eni_id: str, n: int, in_use: int | None = None) -> EniView:
    return EniView(eni_id, "subnet-a", CAP, n, n if in_use is None else in_use)


def empty(eni_id: str, *, usable: bool = True) -> EniView:
    return EniView(eni_id, "subnet-a", CAP, 0, 0, usable)


@pytest.mark.parametrize(
    ("enis", "idle", "can_grow", "want"),
    [
        ([full("eni-1")], 0, True, True),  # the bug's state: full, nothing idle
        ([], 0, True, True),  # no ENI yet: the device plugin sees nothing either
        ([full("eni-1"), full("eni-2")], 0, True, True),
        ([holding("eni-1", 8)], 0, True, False),  # room for one more: nothing ahead
        ([full("eni-1"), empty("eni-2")], 0, True, False),  # the ENI ahead is there
        ([full("eni-1")], 1, True, False),  # an idle IP: a warm IP or room to come
        ([full("eni-1")], 0, False, False),  # no subnet with free IPs: cannot grow
        ([full("eni-1"), full("eni-2"), full("eni-3")], 0, True, False),  # instance limit
        # an ENI on its way (a crash between intent and attach): the reconcile
        # loop finishes it; no second one
        ([full("eni-1"), EniView("eni-2", "subnet-a", CAP, 0, 0, False, True)], 0, True, False),
        # a full ENI in a draining subnet has no room for ipamd either
        ([EniView("eni-1", "subnet-old", CAP, CAP - 1, CAP - 1, False)], 0, True, True),
        # room on an ENI that is not usable (draining subnet) does not count:
        # ipamd adds no IP there
        ([EniView("eni-1", "subnet-old", CAP, 2, 2, False), full("eni-2")], 0, True, True),
    ],
)
def test_needs_ahead_eni(enis: list[EniView], idle: int, can_grow: bool, want: bool) -> None:
    assert pool.needs_ahead_eni(enis, idle, LIMIT, can_grow) is want


def test_needs_ahead_eni_is_regardless_of_the_primary_only_limit() -> None:
    # an instance with 2 ENIs (primary + 1): the one secondary full, no more
    assert not pool.needs_ahead_eni([full("eni-1")], 0, 2, True)
    assert pool.needs_ahead_eni([], 0, 2, True)
    assert not pool.needs_ahead_eni([], 0, 1, True)


def test_keep_ahead_while_the_others_are_full() -> None:
    enis = [full("eni-1"), empty("eni-2")]
    assert pool.keep_ahead(enis, True, None, 100.0, 1.0) == Ahead("eni-2")
    assert pool.keep_ahead(enis, True, Ahead("eni-2"), 500.0, 1.0) == Ahead("eni-2")


def test_keep_ahead_one_of_several_empty_enis() -> None:
    enis = [full("eni-1"), empty("eni-3"), empty("eni-2")]
    assert pool.keep_ahead(enis, True, None, 0.0, 1.0) == Ahead("eni-2"), "lowest id"
    assert pool.keep_ahead(enis, True, Ahead("eni-3"), 0.0, 1.0) == Ahead("eni-3"), "the same"


def test_keep_ahead_none_without_an_empty_usable_eni_or_growth() -> None:
    assert pool.keep_ahead([full("eni-1")], True, None, 0.0, 1.0) is None
    assert pool.keep_ahead([full("eni-1"), empty("eni-2")], False, None, 0.0, 1.0) is None
    unusable = [full("eni-1"), empty("eni-2", usable=False)]
    assert pool.keep_ahead(unusable, True, Ahead("eni-2"), 0.0, 1.0) is None


def test_keep_ahead_not_kept_when_the_others_had_room_already() -> None:
    # an ENI emptied by the trim while another ENI has room (warm target > 0,
    # or pods gone): deleted at once, as before
    enis = [holding("eni-1", 5, 2), empty("eni-2")]
    assert pool.keep_ahead(enis, True, None, 0.0, 1.0) is None


def test_keep_ahead_grace_of_one_interval_once_the_others_have_room() -> None:
    enis = [holding("eni-1", 8), empty("eni-2")]
    first = pool.keep_ahead(enis, True, Ahead("eni-2"), 100.0, 30.0)
    assert first == Ahead("eni-2", 100.0), "room seen at 100: kept, the grace starts"
    assert pool.keep_ahead(enis, True, first, 129.0, 30.0) == Ahead("eni-2", 100.0)
    assert pool.keep_ahead(enis, True, first, 130.0, 30.0) is None, "then deleted"
    # the others full again within the grace: kept, the grace forgotten
    refilled = [full("eni-1"), empty("eni-2")]
    assert pool.keep_ahead(refilled, True, first, 120.0, 30.0) == Ahead("eni-2")


def test_keep_ahead_grace_ends_when_the_eni_takes_an_ip() -> None:
    enis = [full("eni-1"), holding("eni-2", 1)]
    assert pool.keep_ahead(enis, True, Ahead("eni-2"), 0.0, 1.0) is None


def test_the_empty_eni_ahead_then_others_full_no_new_one() -> None:
    """The ENI ahead satisfies the rule: no second one on the next pass."""
    enis = [full("eni-1"), empty("eni-2")]
    assert not pool.needs_ahead_eni(enis, 0, LIMIT, True)
    assert pool.keep_ahead(enis, True, None, 0.0, 1.0) == Ahead("eni-2")
