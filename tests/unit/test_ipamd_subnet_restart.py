"""ipamd.rules.subnets, what a restart needs (issue 11, item 1): the accepted decision
read back from the published status, and the foreign-resource check only for
subnets that hold none of our ENIs yet."""

from __future__ import annotations

from cloud.models import Subnet
from core import models as m
from core.ids import SubnetId, VpcId, Zone
from ipamd.rules import subnets as sn

VPC = "vpc-aaaaaaaa"


def sub(sid: str, zone: str = "ap-guangzhou-3", free: int = 100) -> Subnet:
    return Subnet(SubnetId(sid), VpcId(VPC), "10.0.32.0/20", Zone(zone), free, 4093)


def cfg(*ids: str) -> sn.SubnetConfig:
    return sn.SubnetConfig(VpcId(VPC), tuple(SubnetId(i) for i in ids))


def test_subnet_holding_our_enis_is_not_checked_for_foreign_resources() -> None:
    """No previous decision (a restart), a foreign CVM in a subnet that already
    holds our ENIs: accepted; the same CVM in a subnet we never used: refused."""
    facts = {
        SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa"), ("instance ins-x",)),
    }
    d = sn.decide(cfg("subnet-aaaaaaaa"), facts, previous=None, in_use={"subnet-aaaaaaaa": 1})
    assert d.accepted and set(d.active) == {"subnet-aaaaaaaa"}
    d = sn.decide(cfg("subnet-aaaaaaaa"), facts, previous=None, in_use={})
    assert not d.accepted and "not empty" in d.refusals[0].reason


def test_our_enis_found_in_the_cloud_count_as_in_use() -> None:
    facts = {
        SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(
            sub("subnet-aaaaaaaa"), ("instance ins-x",), ours=2
        ),
    }
    d = sn.decide(cfg("subnet-aaaaaaaa"), facts, previous=None, in_use={})
    assert d.accepted


def test_accepted_decision_round_trips_through_the_published_status() -> None:
    facts = {
        SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa", free=7)),
        SubnetId("subnet-bbbbbbbb"): sn.SubnetFacts(sub("subnet-bbbbbbbb", zone="ap-guangzhou-4")),
    }
    first = sn.decide(cfg("subnet-aaaaaaaa", "subnet-bbbbbbbb"), facts, previous=None, in_use={})
    now = sn.decide(cfg("subnet-bbbbbbbb"), facts, previous=first, in_use={"subnet-aaaaaaaa": 1})
    refused = sn.decide(cfg("subnet-bbbbbbbb", "subnet-nothere1"), facts, previous=now, in_use={})
    assert not refused.accepted
    text = m.dump_subnet_statuses(refused.statuses())  # what ipamd publishes
    back = sn.decision_from_statuses(m.load_subnet_statuses(text))
    assert back is not None and back.accepted
    assert back.vpc_id == VPC
    assert back.active == now.active and back.draining == {
        SubnetId("subnet-aaaaaaaa"): facts[SubnetId("subnet-aaaaaaaa")].subnet
    }
    assert back.refusals == []


def test_nothing_or_garbage_published_means_no_decision() -> None:
    assert sn.decision_from_statuses([]) is None
    only_invalid = [m.SubnetStatus(subnet_id="subnet-aaaaaaaa", state=m.SUBNET_INVALID)]
    assert sn.decision_from_statuses(only_invalid) is None
    mixed_vpcs = [
        m.SubnetStatus("subnet-aaaaaaaa", VPC, "ap-guangzhou-3", "10.0.0.0/24", 1, 2),
        m.SubnetStatus("subnet-bbbbbbbb", "vpc-bbbbbbbb", "ap-guangzhou-3", "10.0.1.0/24", 1, 2),
    ]
    assert sn.decision_from_statuses(mixed_vpcs) is None
    bad_id = [m.SubnetStatus("subnet_bad", VPC, "ap-guangzhou-3", "10.0.0.0/24", 1, 2)]
    assert sn.decision_from_statuses(bad_id) is None
