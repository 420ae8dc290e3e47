"""The read calls a client commonly starts with, through the real Tencent SDK
(its generated clients and models, no code of ours), over HTTPS with only the
endpoint and the emulator's CA configured. Any field of ours that the SDK's model
does not know makes the SDK warn; warnings are errors here, so the reply shapes
are checked field by field."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client
from tencentcloud.cvm.v20170312 import models as cvm_models
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    ca = tmp_path_factory.mktemp("vpcsim-reads") / "ca.pem"
    with run_emulator(faults={"rate_limits": False}, ca_file=ca) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _strict_models() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "X fileds are useless": a field the model lacks
        yield


def _profile(emu: EmulatorHandle) -> ClientProfile:
    assert emu.ca_file is not None
    http = HttpProfile(endpoint=emu.https_endpoint, certification=str(emu.ca_file))
    return ClientProfile(httpProfile=http)


def _vpc(emu: EmulatorHandle) -> vpc_client.VpcClient:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    return vpc_client.VpcClient(cred, emu.region, _profile(emu))


def _cvm(emu: EmulatorHandle) -> cvm_client.CvmClient:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    return cvm_client.CvmClient(cred, emu.region, _profile(emu))


def _req(model: Any, **fields: Any) -> Any:
    req = model()
    for name, value in fields.items():
        setattr(req, name, value)
    return req


def _filter(name: str, *values: str) -> vpc_models.Filter:
    return _req(vpc_models.Filter, Name=name, Values=list(values))


def test_describe_vpcs(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    resp = vpc.DescribeVpcs(vpc_models.DescribeVpcsRequest())
    assert resp.TotalCount == 1
    (only,) = resp.VpcSet
    assert (only.VpcId, only.VpcName, only.CidrBlock) == ("vpc-sim00001", "tke-sim", "10.0.0.0/16")
    assert only.IsDefault is False
    by_id = vpc.DescribeVpcs(_req(vpc_models.DescribeVpcsRequest, VpcIds=["vpc-sim00001"]))
    assert [v.VpcId for v in by_id.VpcSet] == ["vpc-sim00001"]
    named = vpc.DescribeVpcs(
        _req(vpc_models.DescribeVpcsRequest, Filters=[_filter("vpc-name", "other")])
    )
    assert (named.TotalCount, named.VpcSet) == (0, [])
    with pytest.raises(TencentCloudSDKException) as err:
        vpc.DescribeVpcs(_req(vpc_models.DescribeVpcsRequest, VpcIds=["vpc-zzzzzzzz"]))
    assert err.value.get_code() == "ResourceNotFound"
    with pytest.raises(TencentCloudSDKException) as err:
        vpc.DescribeVpcs(_req(vpc_models.DescribeVpcsRequest, VpcIds=["vpc-1"]))
    assert err.value.get_code() == "InvalidParameterValue.Malformed"


def test_describe_subnets_and_route_tables_agree(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    subnets = vpc.DescribeSubnets(vpc_models.DescribeSubnetsRequest()).SubnetSet
    tables = vpc.DescribeRouteTables(vpc_models.DescribeRouteTablesRequest())
    assert tables.TotalCount == 1
    (table,) = tables.RouteTableSet
    assert table.VpcId == "vpc-sim00001"
    assert table.Main is True
    assert {a.SubnetId for a in table.AssociationSet} == {s.SubnetId for s in subnets}
    assert {s.RouteTableId for s in subnets} == {table.RouteTableId}
    assert table.RouteSet == []
    again = vpc.DescribeRouteTables(
        _req(vpc_models.DescribeRouteTablesRequest, Filters=[_filter("vpc-id", "vpc-sim00001")])
    )
    assert [t.RouteTableId for t in again.RouteTableSet] == [table.RouteTableId]


def test_describe_security_groups(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    resp = vpc.DescribeSecurityGroups(vpc_models.DescribeSecurityGroupsRequest())
    assert [
        (g.SecurityGroupId, g.SecurityGroupName, g.IsDefault) for g in resp.SecurityGroupSet
    ] == [("sg-sim00001", "default", True)]
    # a group created is listed too (an ENI may name only groups that exist)
    other = vpc.CreateSecurityGroup(
        _req(vpc_models.CreateSecurityGroupRequest, GroupName="other", GroupDescription="reads")
    ).SecurityGroup.SecurityGroupId
    made = vpc.CreateNetworkInterface(
        _req(
            vpc_models.CreateNetworkInterfaceRequest,
            VpcId="vpc-sim00001",
            SubnetId="subnet-sim00033",
            NetworkInterfaceName="reads-sg",
            SecurityGroupIds=[other],
        )
    )
    emu.admin("POST", "/_admin/tasks/finish", {})
    resp = vpc.DescribeSecurityGroups(
        _req(vpc_models.DescribeSecurityGroupsRequest, SecurityGroupIds=[other])
    )
    assert [g.SecurityGroupId for g in resp.SecurityGroupSet] == [other]
    vpc.DeleteNetworkInterface(
        _req(
            vpc_models.DeleteNetworkInterfaceRequest,
            NetworkInterfaceId=made.NetworkInterface.NetworkInterfaceId,
        )
    )
    emu.admin("POST", "/_admin/tasks/finish", {})


def test_describe_regions_and_zones(emu: EmulatorHandle) -> None:
    cvm = _cvm(emu)
    regions = cvm.DescribeRegions(cvm_models.DescribeRegionsRequest())
    assert [(r.Region, r.RegionState) for r in regions.RegionSet] == [("ap-guangzhou", "AVAILABLE")]
    zones = cvm.DescribeZones(cvm_models.DescribeZonesRequest())
    assert zones.TotalCount == 2
    assert [(z.Zone, z.ZoneId, z.ZoneState) for z in zones.ZoneSet] == [
        ("ap-guangzhou-3", "100003", "AVAILABLE"),
        ("ap-guangzhou-4", "100004", "AVAILABLE"),
    ]
    # every instance is in a listed zone
    instances = cvm.DescribeInstances(cvm_models.DescribeInstancesRequest()).InstanceSet
    assert {i.Placement.Zone for i in instances} <= {z.Zone for z in zones.ZoneSet}


def test_reads_work_over_plain_http_too(emu: EmulatorHandle) -> None:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    http = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint))
    resp = vpc_client.VpcClient(cred, emu.region, http).DescribeVpcs(
        vpc_models.DescribeVpcsRequest()
    )
    assert [v.VpcId for v in resp.VpcSet] == ["vpc-sim00001"]


def test_ca_file_is_a_pem_certificate(emu: EmulatorHandle) -> None:
    assert emu.ca_file is not None
    text = Path(emu.ca_file).read_text()
    assert text.startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY" not in text
