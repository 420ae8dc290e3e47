"""ipamd.cloudcalls' write fence and ipamd.leaks' "not ours to delete" rules
(issue 11 items 6 and 9), without I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cloud.errors import CloudError
from cloud.models import Eni
from core import names
from core.ids import EniId, InstanceId, SubnetId, VpcId, Zone
from ipamd import metrics
from ipamd.cloudcalls import InstrumentedCloud, NotLeaderError
from ipamd.leaks import not_ours_to_delete

CLUSTER, VPC = "cls-kjqul1ir", "vpc-aaaaaaaa"


class Inner:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_first = False

    def delete_eni(self, eni_id: EniId) -> None:
        self.calls.append("delete_eni")
        if self.fail_first:
            self.fail_first = False
            raise CloudError("DeleteNetworkInterface", "RequestLimitExceeded", "slow down")

    def describe_subnets(self, subnet_ids: Any = (), *, vpc_id: Any = None) -> list[Any]:
        self.calls.append("describe_subnets")
        return []


def fenced(leader: list[bool]) -> tuple[InstrumentedCloud, Inner]:
    inner = Inner()
    cloud = InstrumentedCloud(inner, attempts=3, sleep=lambda s: None)  # type: ignore[arg-type]
    cloud.fence = lambda: leader[0]
    return cloud, inner


def count(action: str) -> float:
    v = metrics.REGISTRY.get_sample_value("tke_ipamd_fenced_cloud_writes_total", {"action": action})
    return v or 0.0


def test_write_refused_when_not_leader_reads_allowed() -> None:
    cloud, inner = fenced([False])
    before = count("DeleteNetworkInterface")
    with pytest.raises(NotLeaderError, match="not the leader") as err:
        cloud.delete_eni(EniId("eni-00000001"))
    assert err.value.code == "ipamd.NotLeader" and not err.value.retryable
    assert inner.calls == []  # never reached the cloud
    assert count("DeleteNetworkInterface") == before + 1
    assert cloud.describe_subnets([]) == [] and inner.calls == ["describe_subnets"]


def test_fence_checked_again_before_a_retry() -> None:
    leader = [True]
    cloud, inner = fenced(leader)
    inner.fail_first = True

    def lose(seconds: float) -> None:  # leadership lost while backing off
        leader[0] = False

    cloud.sleep = lose
    with pytest.raises(NotLeaderError):
        cloud.delete_eni(EniId("eni-00000001"))
    assert inner.calls == ["delete_eni"]  # the retry never went out


def eni(**kw: Any) -> Eni:
    base = Eni(
        EniId("eni-00000001"),
        SubnetId("subnet-aaaaaaaa"),
        VpcId(VPC),
        Zone("ap-guangzhou-3"),
        "20:90:6f:00:00:01",
        False,
        "AVAILABLE",
        tags={names.TAG_CLUSTER_ID: CLUSTER, names.TAG_CREATOR: names.TAG_CREATOR_VALUE},
    )
    return replace(base, **kw)


@pytest.mark.parametrize(
    ("changes", "vpc", "needle"),
    [
        ({}, VPC, None),
        ({"instance_id": InstanceId("ins-00000001")}, VPC, None),  # instance checked by caller
        ({"tags": {names.TAG_CLUSTER_ID: "cls-other001"}}, VPC, "not ours"),
        ({"tags": {names.TAG_CLUSTER_ID: CLUSTER}}, VPC, names.TAG_CREATOR),
        (
            {"tags": {names.TAG_CLUSTER_ID: CLUSTER, names.TAG_CREATOR: "someone"}},
            VPC,
            names.TAG_CREATOR,
        ),
        ({"vpc_id": VpcId("vpc-bbbbbbbb")}, VPC, "ours is vpc-aaaaaaaa"),
        ({}, None, "VPC is not known"),
        ({"state": "ATTACHING"}, VPC, "ATTACHING"),
        ({"primary": True}, VPC, "primary"),
    ],
)
def test_not_ours_to_delete(changes: dict[str, Any], vpc: str | None, needle: str | None) -> None:
    why = not_ours_to_delete(eni(**changes), CLUSTER, vpc)
    if needle is None:
        assert why is None
    else:
        assert why is not None and needle in why
