"""ipamd's write fence (``ipamd.fence``, hooked into the cloud adapter) and
ipamd.controllers.leaks' "not ours to delete" rules (issue 11 items 6 and 9), without I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cloud.adapter import TencentCloud
from cloud.errors import CloudError
from cloud.models import Eni
from cloud.settings import CloudSettings
from core import names
from core.ids import EniId, InstanceId, SubnetId, VpcId, Zone
from ipamd import metrics
from ipamd.controllers.leaks import not_ours_to_delete
from ipamd.fence import LeaderFence, NotLeaderError

CLUSTER, VPC = "cls-kjqul1ir", "vpc-aaaaaaaa"


class Wire:
    """The transport under the adapter: records the actions sent."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_first = False

    def call(self, service: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(action)
        if self.fail_first:
            self.fail_first = False
            raise CloudError(action, "RequestLimitExceeded", "slow down")
        return {"SubnetSet": [], "TotalCount": 0}


def fenced(leader: list[bool]) -> tuple[TencentCloud, Wire]:
    wire = Wire()
    settings = CloudSettings(region="ap-guangzhou", max_attempts=3, backoff_base_s=0.001)
    fence = LeaderFence(lambda: leader[0])
    cloud = TencentCloud(settings, wire, sleep=lambda s: None, hooks=fence)
    return cloud, wire


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
    assert cloud.describe_subnets() == [] and inner.calls == ["DescribeSubnets"]


def test_fence_checked_again_before_a_retry() -> None:
    leader = [True]
    cloud, inner = fenced(leader)
    inner.fail_first = True

    def lose(seconds: float) -> None:  # leadership lost while backing off
        leader[0] = False

    cloud._sleep = lose  # the backoff between attempts
    with pytest.raises(NotLeaderError):
        cloud.delete_eni(EniId("eni-00000001"))
    assert inner.calls == ["DeleteNetworkInterface"]  # the retry never went out


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
