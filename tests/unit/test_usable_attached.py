"""The "usable now" rule counts only the room on ENIs already attached (issues 15 and 17
item 3): a just-joined node whose first ENI (19 secondary IPs) attached must not
advertise the instance's 95 — the IPs of ENIs not yet created cannot serve a pod
within the agent's bounded ADD wait (the emulator's ``cloud-slow`` profile gave 11
``FailedCreatePodSandBox`` that way). The one rule (``core.usable``), the capacity
file's key, the agent's tally from its attached ENIs, the VpcENI's capacity as the
Kubernetes IP source reads it, and the device plugin's device set over it."""

from __future__ import annotations

from typing import Any

import pytest

from cni.agent import capacity as cap
from cni.agent.ipsource import EniInfo, NodeIp, NodeIpView, view_from_json
from cni.agent.pool import Allocation, PoolState
from cni.agent.sources.kube_ipsource import eni_of
from core.capacityfile import CapacityOverrides, parse_capacity_file, render_capacity_file
from core.ids import EniId, IPv4
from core.limits import EniLimits
from core.models import IP_STATE_RELEASING, SUBNET_ACTIVE, SubnetStatus
from core.usable import IpTally, has_headroom, healthy_devices, usable_from, usable_now
from device_plugin.capacity import CapacityInputs, device_set

ZONE = "ap-guangzhou-3"
S5_2XLARGE16 = EniLimits(6, 20, "table")  # (6 − 1) × (20 − 1) = 95
NOW = 1_000_000.0


@pytest.mark.parametrize(
    ("tally", "limit", "usable", "healthy"),
    [
        # the just-joined node: first ENI attached, no IP assigned on it yet
        (IpTally(attachable=19, can_grow=True), 95, 19, 19),
        # ipamd assigned its warm pool of 5 on it: still 19
        (IpTally(warm=5, attachable=14, can_grow=True), 95, 19, 19),
        # the burst took them all: nothing more until the second ENI attaches
        (IpTally(in_use=19, attachable=0, can_grow=True), 95, 0, 19),
        # the second ENI attached
        (IpTally(in_use=19, attachable=19, can_grow=True), 95, 19, 38),
        # never above the limit, whatever the ENIs hold (a lowered limit)
        (IpTally(in_use=20, warm=5, attachable=14, can_grow=True), 27, 7, 27),
        # cooling IPs still take their slot under the limit
        (IpTally(in_use=3, cooling=22, attachable=9, can_grow=True), 27, 2, 5),
        # the zone's subnets exhausted: only the warm IPs, attached room or not
        (IpTally(warm=5, attachable=14), 95, 5, 5),
        # the attached room unknown (no ENI capacity reported): the limit's room
        (IpTally(warm=5, can_grow=True), 95, 95, 95),
    ],
)
def test_the_room_on_attached_enis_bounds_usable_now(
    tally: IpTally, limit: int, usable: int, healthy: int
) -> None:
    assert usable_now(tally, limit) == usable
    assert healthy_devices(tally, limit) == healthy
    assert usable_from(tally.warm, tally.occupied, tally.can_grow, limit, tally.attachable) == (
        usable
    )


def test_headroom_agrees() -> None:
    joined = IpTally(warm=5, attachable=14, can_grow=True)
    assert has_headroom(joined, 95, 19)
    assert not has_headroom(joined, 95, 20)


def test_tally_rejects_a_negative_room() -> None:
    with pytest.raises(ValueError, match=r"IpTally\.attachable must be >= 0"):
        IpTally(attachable=-1)


def test_capacity_file_carries_the_attached_room() -> None:
    t = IpTally(in_use=3, warm=2, attachable=14, can_grow=True)
    text = render_capacity_file(CapacityOverrides(tally=t))
    assert "attachable_ips = 14" in text
    assert parse_capacity_file(text).tally == t
    # a file without the key (an older agent, an operator): room unknown
    old = text.replace("attachable_ips = 14\n", "")
    parsed = parse_capacity_file(old).tally
    assert parsed is not None and parsed.attachable is None
    # and the key alone is not a tally
    assert "attachable_ips" not in render_capacity_file(CapacityOverrides(tally=IpTally()))


def eni(n: int, capacity: int | None) -> EniInfo:
    return EniInfo(
        eni_id=EniId(f"eni-{n:04d}"),
        mac=f"02:00:00:00:00:{n:02x}",
        subnet_cidr="10.0.1.0/24",
        gateway=IPv4("10.0.1.1"),
        primary_ip=IPv4(f"10.0.1.{100 + n}"),
        zone=ZONE,
        ip_capacity=capacity,
    )


def ips(n: int, eni_n: int, state: str = "Assigned") -> list[NodeIp]:
    return [
        NodeIp(IPv4(f"10.0.{eni_n}.{10 + i}"), EniId(f"eni-{eni_n:04d}"), state) for i in range(n)
    ]


FREE = [
    SubnetStatus(
        subnet_id="subnet-a",
        zone=ZONE,
        cidr="10.0.1.0/24",
        available=200,
        total=253,
        state=SUBNET_ACTIVE,
    )
]


def test_agent_tallies_the_room_of_its_attached_enis() -> None:
    # the joined node: one ENI of 20 IPs (19 secondary), ipamd assigned 5
    view = NodeIpView((eni(1, 20),), tuple(ips(5, 1)), 1)
    verdict = cap.tally(view, PoolState(), FREE, NOW)
    assert verdict.tally == IpTally(warm=5, attachable=14, can_grow=True)
    assert healthy_devices(verdict.tally, 95) == 19


def test_every_record_on_an_eni_takes_its_room() -> None:
    # in use, leaving, claimed: each holds a secondary slot of its ENI
    node_ips = ips(4, 1)
    releasing = ips(2, 2, IP_STATE_RELEASING)
    claimed = NodeIp(IPv4("10.0.2.50"), EniId("eni-0002"), claim="default/web-0")
    state = PoolState()
    a = node_ips[0]
    state.allocations[a.ip] = Allocation(a.ip, a.eni_id, "c", "eth0", "", "tke0")
    view = NodeIpView((eni(1, 10), eni(2, 10)), (*node_ips, *releasing, claimed), 1)
    t = cap.tally(view, state, FREE, NOW).tally
    assert (t.in_use, t.warm, t.leaving, t.reserved) == (1, 3, 2, 1)
    assert t.attachable == (9 - 4) + (9 - 3)


def test_an_eni_of_unknown_capacity_leaves_the_room_unknown() -> None:
    view = NodeIpView((eni(1, 20), eni(2, None)), tuple(ips(5, 1)), 1)
    assert cap.tally(view, PoolState(), FREE, NOW).tally.attachable is None
    # IPs of an ENI that is not attached (any more) take no room of the attached ones
    view = NodeIpView((eni(1, 20),), (*ips(5, 1), *ips(3, 2)), 1)
    assert cap.tally(view, PoolState(), FREE, NOW).tally.attachable == 14


def vpceni(capacity: int | None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Attached",
        "mac": "02:00:00:00:00:01",
        "gateway": "10.0.1.1",
        "primaryIp": "10.0.1.101",
        "subnetCidr": "10.0.1.0/24",
    }
    if capacity is not None:
        status["ipCapacity"] = capacity
    return {"metadata": {"name": "eni-0001"}, "spec": {"zone": ZONE}, "status": status}


def test_sources_read_the_enis_capacity() -> None:
    got = eni_of(vpceni(20))
    assert got is not None and got.ip_capacity == 20
    got = eni_of(vpceni(None))
    assert got is not None and got.ip_capacity is None
    view = view_from_json(
        {
            "enis": [
                {"id": "eni-1", "mac": "02:00:00:00:00:01", "gateway": "10.0.1.1", "ipCapacity": 10}
            ]
        },
        1,
    )
    assert view.enis[0].ip_capacity == 10


def test_device_plugin_advertises_the_attached_room_of_a_joined_node() -> None:
    joined = CapacityInputs(S5_2XLARGE16, tally=IpTally(warm=5, attachable=14, can_grow=True))
    got = device_set(joined)
    assert (got.capacity, got.healthy) == (95, 19)
