"""Subnet and zone changes wake pending pods (issue 15): when a zone gains
room (its subnets have free IPs again, a subnet accepted for it) or loses
it, ipamd's subnet controller sets the condition ``TKEENISubnetRoom`` on the
nodes of that zone right after publishing the status ConfigMap — a Node
change kube-scheduler 1.33 reacts to (``UpdateNodeCondition``; the extender's
rejections requeue on any Node event), where a ConfigMap change is none.
On the model world (tests/mut_world.py)."""

from __future__ import annotations

from typing import Any

import pytest

from core import models as m
from ipamd.controllers.subnetctl import ROOM_CONDITION, zone_room
from tests.model_world import POD_SUBNET, ZONE
from tests.mut_world import POD2_SUBNET, IpamModel, wide_world

__all__ = ["wide_world"]  # the fixture


def test_zone_room_rule() -> None:
    statuses = [
        m.SubnetStatus(subnet_id="s-a", zone="z1", available=0, state=m.SUBNET_ACTIVE),
        m.SubnetStatus(subnet_id="s-b", zone="z1", available=5, state=m.SUBNET_ACTIVE),
        m.SubnetStatus(subnet_id="s-c", zone="z2", available=9, state=m.SUBNET_DRAINING),
        m.SubnetStatus(subnet_id="s-d", zone="z3", available=9, state=m.SUBNET_ACTIVE),
        m.SubnetStatus(subnet_id="s-e", state=m.SUBNET_INVALID, reason="no such subnet"),
    ]
    assert zone_room(statuses, set()) == {"z1": True, "z2": False, "z3": True}
    # a subnet ipamd found full (the cloud refused an IP) has no room whatever its count
    assert zone_room(statuses, {"s-b", "s-d"}) == {"z1": False, "z2": False, "z3": False}


def test_a_zone_whose_room_changes_marks_its_nodes(
    wide_world: IpamModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = wide_world
    app = w._live_ipamd().app
    calls: list[tuple[str, Any]] = []

    def patch_strategic(path: str, body: Any, **_: Any) -> Any:
        calls.append((path, body))
        return {}

    monkeypatch.setattr(app.subnets.d.objects.api, "patch_strategic", patch_strategic)

    def marked() -> dict[str, tuple[str, str]]:
        out = {}
        for path, body in calls:
            for c in body["status"]["conditions"]:
                if c["type"] == ROOM_CONDITION:
                    out[path.split("/")[-2]] = (c["status"], c["reason"])
        calls.clear()
        return out

    app.subnets._publish()  # the state the App started with: no change
    assert marked() == {}
    # both subnets of the nodes' zone found full
    app.state.exhausted |= {POD_SUBNET, POD2_SUBNET}
    app.subnets._publish()
    nodes = {"n1", "n2", "n3"}  # the model world's nodes, all in ZONE
    assert marked() == dict.fromkeys(nodes, ("False", "NoFreeIPInZone"))
    # the refresh finds free IPs again: the zone has room, its pending pods are retried
    app.subnets.refresh()
    assert not app.state.exhausted & {POD_SUBNET}
    assert marked() == dict.fromkeys(nodes, ("True", "SubnetHasFreeIPs"))
    app.subnets.refresh()  # nothing changed: no write
    assert marked() == {}
    assert ZONE == "ap-guangzhou-3"
