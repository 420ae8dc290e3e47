"""The emulator's elastic IPs through the real Tencent SDK (generated clients and
models; a reply field the model lacks is an error here): allocate (tags, ISP,
bandwidth, ClientToken), describe with filters, associate with an ENI's private
IP, disassociate, release, the quota, async tasks (DescribeTaskResult) and the
API's error codes."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False, "task_delay_ms": 50}) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _strict_models() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _vpc(emu: EmulatorHandle) -> vpc_client.VpcClient:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint))
    return vpc_client.VpcClient(cred, emu.region, profile)


def _req(model: Any, **fields: Any) -> Any:
    req = model()
    req.from_json_string(json.dumps(fields))
    return req


def _code(exc: pytest.ExceptionInfo[TencentCloudSDKException]) -> str:
    return str(exc.value.get_code())


def _wait(vpc: vpc_client.VpcClient, task_id: str) -> str:
    for _ in range(200):
        r = vpc.DescribeTaskResult(_req(vpc_models.DescribeTaskResultRequest, TaskId=int(task_id)))
        if r.Result != "RUNNING":
            return str(r.Result)
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} still RUNNING")


def _one(vpc: vpc_client.VpcClient, address_id: str) -> Any:
    r = vpc.DescribeAddresses(_req(vpc_models.DescribeAddressesRequest, AddressIds=[address_id]))
    assert r.TotalCount == 1
    return r.AddressSet[0]


def _eni_with_ip(emu: EmulatorHandle, vpc: vpc_client.VpcClient) -> tuple[str, str]:
    r = vpc.CreateNetworkInterface(
        _req(
            vpc_models.CreateNetworkInterfaceRequest,
            VpcId="vpc-sim00001",
            SubnetId="subnet-sim00033",
            NetworkInterfaceName="eip-test",
            SecondaryPrivateIpAddressCount=1,
        )
    )
    eni = r.NetworkInterface
    secondary = next(ip.PrivateIpAddress for ip in eni.PrivateIpAddressSet if not ip.Primary)
    return str(eni.NetworkInterfaceId), str(secondary)


def test_allocate_associate_disassociate_release(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    r = vpc.AllocateAddresses(
        _req(
            vpc_models.AllocateAddressesRequest,
            InternetMaxBandwidthOut=100,
            InternetServiceProvider="BGP",
            InternetChargeType="TRAFFIC_POSTPAID_BY_HOUR",
            AddressCount=1,
            Tags=[{"Key": "tke-cluster-id", "Value": "cls-a"}, {"Key": "pod", "Value": "ns/p"}],
            ClientToken="tok-1",
        )
    )
    (address_id,) = r.AddressSet
    assert _one(vpc, address_id).AddressStatus == "CREATING"
    assert _wait(vpc, r.TaskId) == "SUCCESS"
    a = _one(vpc, address_id)
    assert (a.AddressStatus, a.Bandwidth, a.InternetServiceProvider) == ("UNBIND", 100, "BGP")
    assert {t.Key: t.Value for t in a.TagSet} == {"tke-cluster-id": "cls-a", "pod": "ns/p"}
    # the same ClientToken answers the same EIP, allocates no second one
    again = vpc.AllocateAddresses(
        _req(
            vpc_models.AllocateAddressesRequest,
            InternetMaxBandwidthOut=100,
            InternetServiceProvider="BGP",
            InternetChargeType="TRAFFIC_POSTPAID_BY_HOUR",
            AddressCount=1,
            Tags=[{"Key": "tke-cluster-id", "Value": "cls-a"}, {"Key": "pod", "Value": "ns/p"}],
            ClientToken="tok-1",
        )
    )
    assert list(again.AddressSet) == [address_id]
    by_tag = vpc.DescribeAddresses(
        _req(
            vpc_models.DescribeAddressesRequest,
            Filters=[{"Name": "tag:tke-cluster-id", "Values": ["cls-a"]}],
        )
    )
    assert [x.AddressId for x in by_tag.AddressSet] == [address_id]

    eni_id, ip = _eni_with_ip(emu, vpc)
    t = vpc.AssociateAddress(
        _req(
            vpc_models.AssociateAddressRequest,
            AddressId=address_id,
            NetworkInterfaceId=eni_id,
            PrivateIpAddress=ip,
        )
    )
    assert _one(vpc, address_id).AddressStatus == "BINDING"
    assert _wait(vpc, t.TaskId) == "SUCCESS"
    a = _one(vpc, address_id)
    assert (a.AddressStatus, a.NetworkInterfaceId, a.PrivateAddressIp) == ("BIND", eni_id, ip)
    by_ip = vpc.DescribeAddresses(
        _req(
            vpc_models.DescribeAddressesRequest,
            Filters=[{"Name": "private-ip-address", "Values": [ip]}],
        )
    )
    assert [x.AddressId for x in by_ip.AddressSet] == [address_id]
    with pytest.raises(TencentCloudSDKException) as exc:  # bound: no release
        vpc.ReleaseAddresses(_req(vpc_models.ReleaseAddressesRequest, AddressIds=[address_id]))
    assert _code(exc) == "InvalidAddressIdStatus.NotPermit"

    t = vpc.DisassociateAddress(_req(vpc_models.DisassociateAddressRequest, AddressId=address_id))
    assert _wait(vpc, t.TaskId) == "SUCCESS"
    a = _one(vpc, address_id)
    assert (a.AddressStatus, a.NetworkInterfaceId, a.PrivateAddressIp) == ("UNBIND", None, None)
    t = vpc.ReleaseAddresses(_req(vpc_models.ReleaseAddressesRequest, AddressIds=[address_id]))
    assert _wait(vpc, t.TaskId) == "SUCCESS"
    gone = vpc.DescribeAddresses(_req(vpc_models.DescribeAddressesRequest, AddressIds=[address_id]))
    assert gone.TotalCount == 0


def test_quota_and_errors(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    q = vpc.DescribeAddressQuota(vpc_models.DescribeAddressQuotaRequest())
    total = next(x for x in q.QuotaSet if x.QuotaId == "TOTAL_EIP_QUOTA")
    assert (total.QuotaCurrent, total.QuotaLimit) == (0, 20)
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AllocateAddresses(_req(vpc_models.AllocateAddressesRequest, AddressCount=21))
    assert _code(exc) == "AddressQuotaLimitExceeded"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AllocateAddresses(
            _req(vpc_models.AllocateAddressesRequest, InternetMaxBandwidthOut=101)
        )
    assert _code(exc) == "InvalidParameterValue.BandwidthOutOfRange"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AllocateAddresses(
            _req(vpc_models.AllocateAddressesRequest, InternetServiceProvider="X")
        )
    assert _code(exc) == "InvalidParameterValue"
    assert vpc.DescribeAddresses(vpc_models.DescribeAddressesRequest()).TotalCount == 0

    r = vpc.AllocateAddresses(_req(vpc_models.AllocateAddressesRequest, AddressCount=2))
    assert _wait(vpc, r.TaskId) == "SUCCESS"
    q = vpc.DescribeAddressQuota(vpc_models.DescribeAddressQuotaRequest())
    assert next(x for x in q.QuotaSet if x.QuotaId == "TOTAL_EIP_QUOTA").QuotaCurrent == 2
    first, second = r.AddressSet
    eni_id, ip = _eni_with_ip(emu, vpc)
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AssociateAddress(
            _req(
                vpc_models.AssociateAddressRequest,
                AddressId=first,
                NetworkInterfaceId=eni_id,
                PrivateIpAddress="10.9.9.9",
            )
        )
    assert _code(exc) == "InvalidNetworkInterfaceId.NotFound"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AssociateAddress(
            _req(vpc_models.AssociateAddressRequest, AddressId=first, NetworkInterfaceId=eni_id)
        )
    assert _code(exc) == "MissingParameter"
    t = vpc.AssociateAddress(
        _req(
            vpc_models.AssociateAddressRequest,
            AddressId=first,
            NetworkInterfaceId=eni_id,
            PrivateIpAddress=ip,
        )
    )
    with pytest.raises(TencentCloudSDKException) as exc:  # a running task refuses writes
        vpc.DisassociateAddress(_req(vpc_models.DisassociateAddressRequest, AddressId=first))
    assert _code(exc) == "UnsupportedOperation.AddressStatusNotPermit"
    assert _wait(vpc, t.TaskId) == "SUCCESS"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.AssociateAddress(
            _req(
                vpc_models.AssociateAddressRequest,
                AddressId=second,
                NetworkInterfaceId=eni_id,
                PrivateIpAddress=ip,
            )
        )
    assert _code(exc) == "InvalidPrivateIpAddress.AlreadyBindEip"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.DisassociateAddress(_req(vpc_models.DisassociateAddressRequest, AddressId=second))
    assert _code(exc) == "InvalidAddressIdStatus.NotPermit"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.ReleaseAddresses(_req(vpc_models.ReleaseAddressesRequest, AddressIds=["eip-zzzzzzzz"]))
    assert _code(exc) == "InvalidAddressId.NotFound"
    with pytest.raises(TencentCloudSDKException) as exc:
        vpc.ReleaseAddresses(_req(vpc_models.ReleaseAddressesRequest, AddressIds=["nope"]))
    assert _code(exc) == "InvalidParameterValue.AddressIdMalformed"

    # the private IP leaves its ENI: the EIP falls back to UNBIND
    un = vpc.UnassignPrivateIpAddresses(
        _req(
            vpc_models.UnassignPrivateIpAddressesRequest,
            NetworkInterfaceId=eni_id,
            PrivateIpAddresses=[{"PrivateIpAddress": ip}],
        )
    )
    assert un.RequestId
    for _ in range(200):
        if _one(vpc, first).AddressStatus == "UNBIND":
            break
        time.sleep(0.02)
    assert _one(vpc, first).PrivateAddressIp is None


def test_failed_tasks_roll_back(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    emu.set_faults(task_fail_ratio=1.0, actions=["AllocateAddresses"])
    r = vpc.AllocateAddresses(_req(vpc_models.AllocateAddressesRequest))
    assert _wait(vpc, r.TaskId) == "FAILED"
    assert vpc.DescribeAddresses(vpc_models.DescribeAddressesRequest()).TotalCount == 0
    emu.set_faults(task_fail_ratio=1.0, actions=["AssociateAddress"])
    r = vpc.AllocateAddresses(_req(vpc_models.AllocateAddressesRequest))
    assert _wait(vpc, r.TaskId) == "SUCCESS"
    eni_id, ip = _eni_with_ip(emu, vpc)
    t = vpc.AssociateAddress(
        _req(
            vpc_models.AssociateAddressRequest,
            AddressId=r.AddressSet[0],
            NetworkInterfaceId=eni_id,
            PrivateIpAddress=ip,
        )
    )
    assert _wait(vpc, t.TaskId) == "FAILED"
    a = _one(vpc, r.AddressSet[0])
    assert (a.AddressStatus, a.NetworkInterfaceId) == ("UNBIND", None)
    state = emu.state()["eips"]
    assert [x["status"] for x in state["addresses"]] == ["UNBIND"]
