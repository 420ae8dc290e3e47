"""The one "usable now" rule (``core.usable``), the capacity file's IP tally
(``core.capacityfile``), the device plugin's device set over it, and the
agent pool's cooldown floor (issue 15)."""

from __future__ import annotations

import pytest

from cni.agent import pool
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView
from core.capacityfile import (
    CapacityFileError,
    CapacityOverrides,
    parse_capacity_file,
    render_capacity_file,
)
from core.ids import EniId, IPv4
from core.limits import EniLimits
from core.models import IP_PHASE_COOLDOWN, IP_PHASE_FREE
from core.usable import IpTally, has_headroom, healthy_devices, usable_now
from device_plugin.capacity import CapacityInputs, device_set

S5 = EniLimits(4, 10, "table")  # 27


@pytest.mark.parametrize(
    ("tally", "limit", "usable", "healthy"),
    [
        # the node: filled (27), scaled back to 3: 24 cooling, nothing usable
        (IpTally(in_use=3, cooling=24, can_grow=True), 27, 0, 3),
        # ... and once their cooldown is over
        (IpTally(in_use=3, warm=24, can_grow=True), 27, 24, 27),
        # a warm pool of 5 on a node that can grow: the room under the limit counts
        (IpTally(in_use=1, warm=5, can_grow=True), 27, 26, 27),
        # the same node with its zone's subnets exhausted: only the warm ones
        (IpTally(in_use=1, warm=5), 27, 5, 6),
        # a static pod's reserved IP is never usable by another pod
        (IpTally(in_use=2, warm=0, reserved=1), 27, 0, 2),
        (IpTally(in_use=20, reserved=4, cooling=2, can_grow=True), 27, 1, 21),
        # leaving IPs take a slot until ipamd has them back
        (IpTally(in_use=25, leaving=2, can_grow=True), 27, 0, 25),
        # bounded by the limit even when more are warm (e.g. a lowered limit)
        (IpTally(in_use=10, warm=30), 27, 17, 27),
        # no limit known: the warm ones
        (IpTally(in_use=4, warm=3, can_grow=True), None, 3, 7),
    ],
)
def test_usable_now_and_healthy(
    tally: IpTally, limit: int | None, usable: int, healthy: int
) -> None:
    assert usable_now(tally, limit) == usable
    assert healthy_devices(tally, limit) == healthy


def test_headroom_counts_the_pods_own_reserved_ip() -> None:
    t = IpTally(in_use=26, reserved=1)
    assert not has_headroom(t, 27, 1)  # another pod: no room
    assert has_headroom(t, 27, 1, own_reserved=1)  # the claim's own pod needs no new slot


def test_tally_rejects_negatives() -> None:
    with pytest.raises(ValueError, match=r"IpTally\.cooling must be >= 0"):
        IpTally(cooling=-1)


def test_capacity_file_tally_round_trip_and_errors() -> None:
    t = IpTally(in_use=3, warm=4, cooling=2, reserved=1, leaving=0, can_grow=True)
    text = render_capacity_file(CapacityOverrides(tally=t), ["a comment"])
    assert "can_grow = 1" in text and "in_use_ips = 3" in text
    assert parse_capacity_file(text) == CapacityOverrides(tally=t)
    with pytest.raises(CapacityFileError, match="f:2: can_grow must be 0 or 1"):
        parse_capacity_file("in_use_ips = 1\ncan_grow = 2\n", "f")
    with pytest.raises(CapacityFileError, match="missing warm_ips, cooling_ips"):
        parse_capacity_file("in_use_ips = 1\n", "f")


@pytest.mark.parametrize(
    ("inputs", "capacity", "healthy"),
    [
        (CapacityInputs(S5), 27, 27),  # no tally: the whole capacity
        (CapacityInputs(S5, tally=IpTally(in_use=3, cooling=24, can_grow=True)), 27, 3),
        (CapacityInputs(S5, tally=IpTally(in_use=1, warm=5)), 27, 6),
        # the operator's usable_ips still caps it
        (CapacityInputs(S5, usable_ips=4, tally=IpTally(in_use=1, warm=5)), 27, 4),
        # an unavailable ENI lowers the limit the rule works under: 2 × 9 = 18
        (CapacityInputs(S5, unavailable_enis=1, tally=IpTally(warm=30, can_grow=True)), 27, 18),
        (CapacityInputs(None, tally=IpTally(warm=5)), 0, 0),  # limits unknown: nothing
    ],
)
def test_device_set_applies_the_rule(inputs: CapacityInputs, capacity: int, healthy: int) -> None:
    got = device_set(inputs)
    assert (got.capacity, got.healthy) == (capacity, healthy)


NOW = 1_000_000.0
ENI = EniInfo(
    EniId("eni-1"), "02:00:00:00:00:01", "10.0.1.0/24", IPv4("10.0.1.1"), IPv4("10.0.1.2")
)


def node(n: int) -> NodeIpView:
    return NodeIpView((ENI,), tuple(NodeIp(IPv4(f"10.0.1.{10 + i}"), ENI.eni_id) for i in range(n)))


def test_floor_reuse_only_when_nothing_else_is_free_earliest_first() -> None:
    view = node(3)
    a, b, c = (i.ip for i in view.ips)
    state = pool.PoolState(early_reuse=120.0)  # --cooldown 150, --cooldown-floor 30
    state.cooldown[a] = NOW + 110  # rested 40 s: past the floor
    state.cooldown[b] = NOW + 100  # rested 50 s: past the floor, ends first
    chosen = pool.choose_dynamic(view, state, NOW)
    assert chosen is not None and chosen.ip == c  # a free one first
    state.cooldown[c] = NOW + 140  # rested 10 s: not yet
    chosen = pool.choose_dynamic(view, state, NOW)
    assert chosen is not None and chosen.ip == b  # then the earliest past the floor
    state.early_reuse = 0.0  # --cooldown-floor >= --cooldown: never
    assert pool.choose_dynamic(view, state, NOW) is None


def test_a_cooling_ip_past_the_floor_is_reported_free() -> None:
    view = node(2)
    a, b = (i.ip for i in view.ips)
    state = pool.PoolState(early_reuse=120.0)
    state.cooldown[a] = NOW + 110
    state.cooldown[b] = NOW + 140
    phases = {u.ip: u.phase for u in pool.usage(view, state, NOW)}
    assert phases == {a: IP_PHASE_FREE, b: IP_PHASE_COOLDOWN}
