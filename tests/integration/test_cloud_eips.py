"""The cloud adapter's EIP calls through the real SDK against the emulator:
allocate (tags: cluster id, creator, the caller's; ClientToken replay answers the
same address), describe by id and by tag, associate / disassociate / release
waiting for their tasks (DescribeTaskResult), the quota, FAILED tasks as
TaskFailedError, and throttling / 5xx retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.errors import CloudError, TaskFailedError
from core.ids import SubnetId, VpcId
from core.names import TAG_CLUSTER_ID, TAG_CREATOR
from tests.emulator_client import cloud_for
from vpcsim.testing import EmulatorHandle, run_emulator

VPC = VpcId("vpc-sim00001")
POD3 = SubnetId("subnet-sim00033")


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False}) as handle:
        yield handle


def test_eip_lifecycle(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    quota = cloud.eip_quota()
    assert (quota.used, quota.limit, quota.free) == (0, 20, 20)
    eip = cloud.allocate_eip(
        bandwidth_mbps=100,
        isp="BGP",
        charge_type=None,
        name="default/web-0",
        tags={"tke-eip-pod": "default.web-0"},
        client_token="tok-web-0",
    )
    assert eip.status == "UNBIND" and eip.public_ip and eip.bandwidth == 100
    assert eip.tags["tke-eip-pod"] == "default.web-0"
    assert eip.tags[TAG_CREATOR] == "tke-eni-ipamd"
    assert TAG_CLUSTER_ID in eip.tags
    again = cloud.allocate_eip(
        bandwidth_mbps=100,
        isp="BGP",
        charge_type=None,
        name="default/web-0",
        tags={"tke-eip-pod": "default.web-0"},
        client_token="tok-web-0",
    )
    assert again.eip_id == eip.eip_id
    assert [e.eip_id for e in cloud.describe_eips(tags={"tke-eip-pod": "default.web-0"})] == [
        eip.eip_id
    ]
    assert cloud.describe_eips(tags={"tke-eip-pod": "other"}) == []

    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="e", secondary_ip_count=1)
    ip = eni.secondary_ips[0]
    cloud.associate_eip(eip.eip_id, eni.eni_id, ip)
    [bound] = cloud.describe_eips(eip_ids=[eip.eip_id])
    assert (bound.status, bound.eni_id, bound.private_ip) == ("BIND", eni.eni_id, ip)
    cloud.disassociate_eip(eip.eip_id)
    [free] = cloud.describe_eips(eip_ids=[eip.eip_id])
    assert (free.status, free.eni_id) == ("UNBIND", None)
    cloud.release_eips([eip.eip_id])
    assert cloud.describe_eips(eip_ids=[eip.eip_id]) == []
    cloud.release_eips([eip.eip_id], gone_ok=True)  # gone: done
    with pytest.raises(CloudError) as exc:
        cloud.release_eips([eip.eip_id])
    assert exc.value.code == "InvalidAddressId.NotFound"
    assert cloud.eip_quota().used == 0


def test_eip_failed_task_and_retries(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu, max_attempts=30)
    emu.set_faults(task_fail_ratio=1.0, actions=["AssociateAddress"])
    eip = cloud.allocate_eip(
        bandwidth_mbps=None, isp=None, charge_type=None, name="x", tags={}, client_token="t1"
    )
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="e", secondary_ip_count=1)
    with pytest.raises(TaskFailedError):
        cloud.associate_eip(eip.eip_id, eni.eni_id, eni.secondary_ips[0])
    [seen] = cloud.describe_eips(eip_ids=[eip.eip_id])
    assert seen.status == "UNBIND"
    emu.set_faults(
        task_fail_ratio=0.0,
        throttle_ratio=0.4,
        error_5xx_ratio=0.2,
        actions=["AllocateAddresses", "DescribeAddresses", "AssociateAddress"],
    )
    cloud.associate_eip(eip.eip_id, eni.eni_id, eni.secondary_ips[0])
    more = [
        cloud.allocate_eip(
            bandwidth_mbps=1, isp=None, charge_type=None, name="y", tags={}, client_token=f"m{i}"
        )
        for i in range(3)
    ]
    emu.clear_faults()
    assert {e.eip_id for e in cloud.describe_eips()} == {eip.eip_id, *(m.eip_id for m in more)}
