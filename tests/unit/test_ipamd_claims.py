"""ipamd.rules.claims: the static-IP claim state machine and expiry, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ipamd.rules.claims import (
    ClaimView,
    IpView,
    PodView,
    Step,
    decide,
    effective_duration,
    validate_annotation,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def claim(
    phase: str = "Bound",
    ip: str = "10.0.0.5",
    uid: str = "u1",
    node: str = "n1",
    last_seen: datetime | None = NOW,
    dur: str = "",
    deleting: bool = False,
) -> ClaimView:
    return ClaimView("ns/web-0", phase, ip, "z3" if ip else "", node, uid, last_seen, dur, deleting)


def pod(uid: str = "u1", node: str = "n1", zone: str = "z3", deleting: bool = False) -> PodView:
    return PodView(uid, node, zone, deleting)


def ip(
    node: str = "n1",
    alive: bool = True,
    reserved: str = "u1",
    user: str = "",
    released: bool = False,
) -> IpView:
    return IpView(node, alive, reserved, user, released)


NEVER: tuple[timedelta | None] = (None,)
TEN_MIN: tuple[timedelta | None] = (timedelta(minutes=10),)


@pytest.mark.parametrize(
    ("c", "p", "i", "default", "step"),
    [
        # no IP yet
        (claim("Pending", ip=""), pod(), None, NEVER, Step.ALLOCATE),
        (claim("Pending", ip=""), pod(node=""), None, NEVER, Step.NONE),
        (claim("Pending", ip=""), None, None, NEVER, Step.NONE),
        # steady
        (claim(), pod(), ip(), NEVER, Step.NONE),
        (claim("Migrating"), pod(), ip(), NEVER, Step.MARK_BOUND),
        # pod gone
        (claim(), None, ip(), NEVER, Step.MARK_RESERVED),
        (claim(), pod(deleting=True), ip(), NEVER, Step.MARK_RESERVED),
        (claim("Reserved"), None, ip(), NEVER, Step.NONE),  # never expires
        (claim("Reserved", last_seen=NOW - timedelta(minutes=5)), None, ip(), TEN_MIN, Step.NONE),
        (
            claim("Reserved", last_seen=NOW - timedelta(minutes=11)),
            None,
            ip(),
            TEN_MIN,
            Step.RELEASE,
        ),
        # per-claim duration overrides the flag
        (
            claim("Reserved", last_seen=NOW - timedelta(minutes=2), dur="1m"),
            None,
            ip(),
            NEVER,
            Step.RELEASE,
        ),
        (
            claim("Reserved", last_seen=NOW - timedelta(minutes=2), dur="1h"),
            None,
            ip(),
            TEN_MIN,
            Step.NONE,
        ),
        # recreated on the same node
        (claim("Reserved", uid="u1"), pod(uid="u2"), ip(), NEVER, Step.RESERVE_FOR_POD),
        (claim("Reserved", uid="u1"), pod(uid="u2"), ip(user="u1"), NEVER, Step.WAIT),
        (claim("Reserved", uid="u1"), pod(uid="u2"), ip(reserved="u2"), NEVER, Step.MARK_BOUND),
        # recreated on another node of the zone
        (claim("Reserved"), pod(uid="u2", node="n2"), ip(), NEVER, Step.MIGRATE),
        (claim("Reserved"), pod(uid="u2", node="n2"), ip(user="u1"), NEVER, Step.WAIT),
        (
            claim("Reserved"),
            pod(uid="u2", node="n2"),
            ip(user="u1", released=True),
            NEVER,
            Step.MIGRATE,
        ),
        (
            claim("Reserved"),
            pod(uid="u2", node="n2"),
            ip(user="u1", alive=False),
            NEVER,
            Step.MIGRATE,
        ),
        (claim("Reserved"), pod(uid="u2", node="n2"), None, NEVER, Step.MIGRATE),
        # another zone: wait, with a reason
        (claim("Reserved"), pod(uid="u2", node="n9", zone="z4"), ip(), NEVER, Step.WAIT),
        # recreated, not yet scheduled
        (claim("Bound", uid="u1"), pod(uid="u2", node=""), ip(), NEVER, Step.MARK_RESERVED),
        # a move was started, then the pod came back to the same node
        (
            claim("Migrating"),
            pod(),
            IpView("n1", True, "u1", "", False, True),
            NEVER,
            Step.RESERVE_FOR_POD,
        ),
        # deletion wins
        (claim(deleting=True), pod(), ip(), NEVER, Step.RELEASE),
    ],
)
def test_decide(
    c: ClaimView, p: PodView | None, i: IpView | None, default: tuple[timedelta | None], step: Step
) -> None:
    assert decide(c, p, i, default_duration=default, now=NOW).step is step


def test_owner_gone_releases_only_without_pod() -> None:
    assert (
        decide(claim("Reserved"), None, ip(), default_duration=NEVER, now=NOW, owner_gone=True).step
        is Step.RELEASE
    )
    assert (
        decide(claim(), pod(), ip(), default_duration=NEVER, now=NOW, owner_gone=True).step
        is Step.NONE
    )


def test_wait_reason_names_zone() -> None:
    d = decide(
        claim("Reserved"),
        pod(uid="u2", node="n9", zone="z4"),
        ip(),
        default_duration=NEVER,
        now=NOW,
    )
    assert "zone z4" in d.reason and "zone z3" in d.reason and "10.0.0.5" in d.reason


@pytest.mark.parametrize(
    ("value", "stored", "error"),
    [
        (None, "", False),
        ("", "", False),
        ("10m0s", "10m0s", False),
        (" 1h ", "1h", False),
        ("ten minutes", "", True),
        ("-5m", "", True),
        ("10", "", True),
    ],
)
def test_validate_annotation(value: str | None, stored: str, error: bool) -> None:
    got, err = validate_annotation(value)
    assert got == stored
    assert (err is not None) is error
    if err:
        assert "claim-expired-duration" in err


def test_effective_duration() -> None:
    assert effective_duration("", None) is None
    assert effective_duration("", timedelta(1)) == timedelta(1)
    assert effective_duration("30s", None) == timedelta(seconds=30)
    assert effective_duration("junk", timedelta(1)) == timedelta(1)
