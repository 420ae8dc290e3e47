"""ipamd.rules.subnets: ConfigMap parsing and the all-or-nothing subnet decision."""

from __future__ import annotations

import pytest

from cloud.models import Subnet
from core.ids import SubnetId, VpcId, Zone
from ipamd.rules import subnets as sn

VPC = "vpc-aaaaaaaa"


def sub(sid: str, zone: str = "ap-guangzhou-3", vpc: str = VPC, free: int = 100) -> Subnet:
    return Subnet(SubnetId(sid), VpcId(vpc), "10.0.32.0/20", Zone(zone), free, 4093)


@pytest.mark.parametrize(
    ("data", "ids", "warnings"),
    [
        (
            {"TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa", "TKE_ENI_IPAMD_VPC_ID": VPC},
            ["subnet-aaaaaaaa"],
            0,
        ),
        (
            {
                "TKE_ENI_IPAMD_SUBNET_ID": " subnet-aaaaaaaa:subnet-bbbbbbbb ",
                "TKE_ENI_IPAMD_VPC_ID": VPC,
            },
            ["subnet-aaaaaaaa", "subnet-bbbbbbbb"],
            0,
        ),
        (
            {
                "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa:subnet-aaaaaaaa",
                "TKE_ENI_IPAMD_VPC_ID": VPC,
            },
            ["subnet-aaaaaaaa"],
            1,
        ),
        (
            {
                "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa",
                "TKE_ENI_IPAMD_VPC_ID": VPC,
                "TKE_ENI_IPAMD_ZONE": "ap-guangzhou-3",
            },
            ["subnet-aaaaaaaa"],
            1,
        ),
    ],
)
def test_parse_ok(data: dict[str, str], ids: list[str], warnings: int) -> None:
    cfg = sn.parse_configmap(data)
    assert list(cfg.subnet_ids) == ids
    assert cfg.vpc_id == VPC
    assert len(cfg.warnings) == warnings
    if "TKE_ENI_IPAMD_ZONE" in data:
        assert "deprecated" in cfg.warnings[0]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (None, "TKE_ENI_IPAMD_VPC_ID is missing"),
        ({"TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa"}, "TKE_ENI_IPAMD_VPC_ID is missing"),
        ({"TKE_ENI_IPAMD_VPC_ID": VPC}, "TKE_ENI_IPAMD_SUBNET_ID is missing"),
        ({"TKE_ENI_IPAMD_VPC_ID": VPC, "TKE_ENI_IPAMD_SUBNET_ID": "  "}, "missing or empty"),
        (
            {"TKE_ENI_IPAMD_VPC_ID": "vpc_1", "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa"},
            "'vpc_1' is not a VPC id",
        ),
        (
            {"TKE_ENI_IPAMD_VPC_ID": VPC, "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa,subnet-b"},
            "is not a subnet id",
        ),
        (
            {"TKE_ENI_IPAMD_VPC_ID": VPC, "TKE_ENI_IPAMD_SUBNET_ID": "subnet-aaaaaaaa::"},
            "'' is not a subnet id",
        ),
        (
            {"TKE_ENI_IPAMD_VPC_ID": VPC, "TKE_ENI_IPAMD_SUBNET_ID": "SUBNET-AAAAAAAA"},
            "is not a subnet id",
        ),
    ],
)
def test_parse_refuses(data: dict[str, str] | None, needle: str) -> None:
    with pytest.raises(sn.SubnetConfigError) as err:
        sn.parse_configmap(data)
    assert needle in str(err.value)
    assert "kube-system/tke-eni-ipamd" in str(err.value)


def cfg(*ids: str, vpc: str = VPC) -> sn.SubnetConfig:
    return sn.SubnetConfig(VpcId(vpc), tuple(SubnetId(i) for i in ids))


@pytest.mark.parametrize(
    ("facts", "needle"),
    [
        ({}, "does not exist"),
        (
            {"subnet-aaaaaaaa": sn.SubnetFacts(sub("subnet-aaaaaaaa", vpc="vpc-bbbbbbbb"))},
            "belongs to vpc-bbbbbbbb",
        ),
        ({"subnet-aaaaaaaa": sn.SubnetFacts(sub("subnet-aaaaaaaa", zone=""))}, "unknown zone"),
        (
            {"subnet-aaaaaaaa": sn.SubnetFacts(sub("subnet-aaaaaaaa"), ("instance ins-aaaaaaaa",))},
            "not empty",
        ),
    ],
)
def test_decide_refuses_whole_change(facts: dict[str, sn.SubnetFacts], needle: str) -> None:
    prev = sn.decide(
        cfg("subnet-cccccccc"),
        {SubnetId("subnet-cccccccc"): sn.SubnetFacts(sub("subnet-cccccccc"))},
        previous=None,
        in_use={},
    )
    assert prev.accepted
    typed = {SubnetId(k): v for k, v in facts.items()}
    typed[SubnetId("subnet-cccccccc")] = sn.SubnetFacts(sub("subnet-cccccccc"))
    d = sn.decide(cfg("subnet-cccccccc", "subnet-aaaaaaaa"), typed, previous=prev, in_use={})
    assert not d.accepted
    assert set(d.active) == {"subnet-cccccccc"}  # nothing half-applied
    assert len(d.refusals) == 1 and needle in d.refusals[0].reason
    assert d.refusals[0].subnet_id == "subnet-aaaaaaaa"
    assert "subnet-aaaaaaaa" in d.refusals[0].reason


def test_foreign_resources_only_checked_for_new_subnets() -> None:
    facts = {SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa"))}
    prev = sn.decide(cfg("subnet-aaaaaaaa"), facts, previous=None, in_use={})
    facts2 = {SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa"), ("eni-x",))}
    d = sn.decide(cfg("subnet-aaaaaaaa"), facts2, previous=prev, in_use={})
    assert d.accepted


@pytest.mark.parametrize(("in_use", "draining"), [(0, set()), (3, {"subnet-aaaaaaaa"})])
def test_removed_subnet_drains_while_in_use(in_use: int, draining: set[str]) -> None:
    both = {
        SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa")),
        SubnetId("subnet-bbbbbbbb"): sn.SubnetFacts(sub("subnet-bbbbbbbb", zone="ap-guangzhou-4")),
    }
    prev = sn.decide(cfg("subnet-aaaaaaaa", "subnet-bbbbbbbb"), both, previous=None, in_use={})
    d = sn.decide(cfg("subnet-bbbbbbbb"), both, previous=prev, in_use={"subnet-aaaaaaaa": in_use})
    assert d.accepted
    assert set(d.active) == {"subnet-bbbbbbbb"}
    assert set(d.draining) == draining
    states = {s.subnet_id: s.state for s in d.statuses()}
    assert states["subnet-bbbbbbbb"] == "Active"
    if draining:
        assert states["subnet-aaaaaaaa"] == "Draining"
        sn.refresh(d, [sub("subnet-aaaaaaaa", free=7)], {"subnet-aaaaaaaa": 0})
        assert not d.draining


def test_zone_lookup_and_vpc_change_refused_while_in_use() -> None:
    facts = {SubnetId("subnet-aaaaaaaa"): sn.SubnetFacts(sub("subnet-aaaaaaaa"))}
    prev = sn.decide(cfg("subnet-aaaaaaaa"), facts, previous=None, in_use={})
    assert [s.subnet_id for s in prev.usable_in_zone("ap-guangzhou-3")] == ["subnet-aaaaaaaa"]
    assert prev.usable_in_zone("ap-guangzhou-4") == []
    other = {
        SubnetId("subnet-bbbbbbbb"): sn.SubnetFacts(sub("subnet-bbbbbbbb", vpc="vpc-cccccccc"))
    }
    d = sn.decide(
        cfg("subnet-bbbbbbbb", vpc="vpc-cccccccc"),
        other,
        previous=prev,
        in_use={"subnet-aaaaaaaa": 2},
    )
    assert not d.accepted and "changing TKE_ENI_IPAMD_VPC_ID" in d.refusals[0].reason
