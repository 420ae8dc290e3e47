"""The emulator's security groups through the real Tencent SDK (generated
clients and models; a reply field the model lacks is an error here): groups and
their rules, association with ENIs (order kept: appended, removals keep the
rest), an instance's groups (those of its primary ENI) set with CVM
ModifyInstancesAttribute and read back in DescribeInstances, and the errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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
    ca = tmp_path_factory.mktemp("vpcsim-sg") / "ca.pem"
    with run_emulator(faults={"rate_limits": False}, ca_file=ca) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _strict_models() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _profile(emu: EmulatorHandle) -> ClientProfile:
    assert emu.ca_file is not None
    return ClientProfile(
        httpProfile=HttpProfile(endpoint=emu.https_endpoint, certification=str(emu.ca_file))
    )


def _vpc(emu: EmulatorHandle) -> vpc_client.VpcClient:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    return vpc_client.VpcClient(cred, emu.region, _profile(emu))


def _cvm(emu: EmulatorHandle) -> cvm_client.CvmClient:
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    return cvm_client.CvmClient(cred, emu.region, _profile(emu))


def _req(model: Any, **fields: Any) -> Any:
    req = model()
    req.from_json_string(__import__("json").dumps(fields))
    return req


def _group(vpc: vpc_client.VpcClient, name: str) -> str:
    resp = vpc.CreateSecurityGroup(
        _req(vpc_models.CreateSecurityGroupRequest, GroupName=name, GroupDescription="test")
    )
    assert resp.SecurityGroup.SecurityGroupName == name
    return str(resp.SecurityGroup.SecurityGroupId)


def _eni(vpc: vpc_client.VpcClient, groups: list[str] | None = None) -> str:
    fields: dict[str, Any] = {
        "VpcId": "vpc-sim00001",
        "SubnetId": "subnet-sim00033",
        "NetworkInterfaceName": "sg-test",
    }
    if groups:
        fields["SecurityGroupIds"] = groups
    resp = vpc.CreateNetworkInterface(_req(vpc_models.CreateNetworkInterfaceRequest, **fields))
    return str(resp.NetworkInterface.NetworkInterfaceId)


def _groups_of(vpc: vpc_client.VpcClient, eni_id: str) -> list[str]:
    resp = vpc.DescribeNetworkInterfaces(
        _req(vpc_models.DescribeNetworkInterfacesRequest, NetworkInterfaceIds=[eni_id])
    )
    return list(resp.NetworkInterfaceSet[0].GroupSet)


def _code(exc: pytest.ExceptionInfo[TencentCloudSDKException]) -> str:
    return str(exc.value.get_code())


def test_rules_created_listed_inserted_and_deleted(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    sg = _group(vpc, "web")
    rules = [
        {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.48.0/20", "Action": "DROP"},
        {"Protocol": "ALL", "Port": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"},
    ]
    vpc.CreateSecurityGroupPolicies(
        _req(
            vpc_models.CreateSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Ingress": rules},
        )
    )
    got = vpc.DescribeSecurityGroupPolicies(
        _req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg)
    ).SecurityGroupPolicySet
    assert got.Version == "1"
    assert [(r.PolicyIndex, r.Protocol, r.Port, r.CidrBlock, r.Action) for r in got.Ingress] == [
        (0, "TCP", "80", "10.0.48.0/20", "DROP"),
        (1, "ALL", "ALL", "0.0.0.0/0", "ACCEPT"),
    ]
    assert got.Egress == []
    # inserted at PolicyIndex 0; a stale Version is refused and changes nothing
    icmp = {"PolicyIndex": 0, "Protocol": "ICMP", "CidrBlock": "10.0.0.0/16", "Action": "ACCEPT"}
    with pytest.raises(TencentCloudSDKException) as stale:
        vpc.CreateSecurityGroupPolicies(
            _req(
                vpc_models.CreateSecurityGroupPoliciesRequest,
                SecurityGroupId=sg,
                SecurityGroupPolicySet={"Version": "0", "Ingress": [icmp]},
            )
        )
    assert _code(stale) == "UnsupportedOperation.VersionMismatch"
    vpc.CreateSecurityGroupPolicies(
        _req(
            vpc_models.CreateSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Version": "1", "Ingress": [icmp]},
        )
    )
    with pytest.raises(TencentCloudSDKException) as dup:
        vpc.CreateSecurityGroupPolicies(
            _req(
                vpc_models.CreateSecurityGroupPoliciesRequest,
                SecurityGroupId=sg,
                SecurityGroupPolicySet={"Ingress": [rules[0]]},
            )
        )
    assert _code(dup) == "UnsupportedOperation.DuplicatePolicy"
    # deleted by match, then by index
    vpc.DeleteSecurityGroupPolicies(
        _req(
            vpc_models.DeleteSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Ingress": [rules[0]]},
        )
    )
    vpc.DeleteSecurityGroupPolicies(
        _req(
            vpc_models.DeleteSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Ingress": [{"PolicyIndex": 0}]},
        )
    )
    got = vpc.DescribeSecurityGroupPolicies(
        _req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg)
    ).SecurityGroupPolicySet
    assert [(r.Protocol, r.Action) for r in got.Ingress] == [("ALL", "ACCEPT")]
    assert got.Version == "4"


def test_rules_reset_whole(emu: EmulatorHandle) -> None:
    """ModifySecurityGroupPolicies replaces both directions' rules at once (a
    direction not given is left empty); ``Version`` "0" clears them all; no
    ``PolicyIndex``; a bad rule changes nothing."""
    vpc = _vpc(emu)
    sg = _group(vpc, "reset")
    old = {"Protocol": "TCP", "Port": "22", "CidrBlock": "10.0.0.0/8", "Action": "ACCEPT"}
    out = {"Protocol": "ALL", "Port": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}
    vpc.CreateSecurityGroupPolicies(
        _req(
            vpc_models.CreateSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Egress": [out]},
        )
    )
    vpc.CreateSecurityGroupPolicies(
        _req(
            vpc_models.CreateSecurityGroupPoliciesRequest,
            SecurityGroupId=sg,
            SecurityGroupPolicySet={"Ingress": [old]},
        )
    )

    def modify(policy_set: dict[str, Any]) -> None:
        vpc.ModifySecurityGroupPolicies(
            _req(
                vpc_models.ModifySecurityGroupPoliciesRequest,
                SecurityGroupId=sg,
                SecurityGroupPolicySet=policy_set,
            )
        )

    def rules() -> tuple[str, list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        got = vpc.DescribeSecurityGroupPolicies(
            _req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg)
        ).SecurityGroupPolicySet
        return (
            got.Version,
            [(r.Protocol, r.Port, r.Action) for r in got.Ingress],
            [(r.Protocol, r.Port, r.Action) for r in got.Egress],
        )

    web = {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.48.0/20", "Action": "DROP"}
    icmp = {"Protocol": "ICMP", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}
    modify({"Ingress": [web, icmp]})
    assert rules() == ("3", [("TCP", "80", "DROP"), ("ICMP", "ALL", "ACCEPT")], [])
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"Ingress": [{**web, "PolicyIndex": 0}]}, "InvalidParameter"),
        ({"Ingress": [{**web, "Action": "MAYBE"}]}, "InvalidParameterValue"),
        ({"Ingress": [web, web]}, "UnsupportedOperation.DuplicatePolicy"),
        ({"Version": "7", "Ingress": [web]}, "UnsupportedOperation.VersionMismatch"),
    ]
    for bad, code in refusals:
        with pytest.raises(TencentCloudSDKException) as refused:
            modify(bad)
        assert _code(refused) == code, bad
    assert rules()[1:] == ([("TCP", "80", "DROP"), ("ICMP", "ALL", "ACCEPT")], [])
    modify({"Version": "3", "Egress": [out]})
    assert rules() == ("4", [], [("ALL", "ALL", "ACCEPT")])
    modify({"Version": "0", "Ingress": [web]})  # 0: clear all, the rules given ignored
    assert rules() == ("5", [], [])


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (
            {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "MAYBE"},
            "InvalidParameterValue",
        ),
        (
            {"Protocol": "SCTP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "DROP"},
            "InvalidParameterValue",
        ),
        (
            {"Protocol": "TCP", "Port": "70000", "CidrBlock": "10.0.0.0/8", "Action": "DROP"},
            "InvalidParameterValue.Range",
        ),
        (
            {"Protocol": "ICMP", "Port": "80", "CidrBlock": "10.0.0.0/8", "Action": "DROP"},
            "InvalidParameterValue",
        ),
        (
            {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.0.300/8", "Action": "DROP"},
            "InvalidParameterValue.Malformed",
        ),
        ({"Protocol": "TCP", "Port": "80", "Action": "DROP"}, "MissingParameter"),
    ],
)
def test_bad_rules_are_refused_and_change_nothing(
    emu: EmulatorHandle, rule: dict[str, Any], code: str
) -> None:
    vpc = _vpc(emu)
    sg = _group(vpc, "bad-rules")
    with pytest.raises(TencentCloudSDKException) as err:
        vpc.CreateSecurityGroupPolicies(
            _req(
                vpc_models.CreateSecurityGroupPoliciesRequest,
                SecurityGroupId=sg,
                SecurityGroupPolicySet={"Ingress": [rule]},
            )
        )
    assert _code(err) == code
    got = vpc.DescribeSecurityGroupPolicies(
        _req(vpc_models.DescribeSecurityGroupPoliciesRequest, SecurityGroupId=sg)
    ).SecurityGroupPolicySet
    assert (got.Version, got.Ingress) == ("0", [])


def test_association_appends_in_order_and_removal_keeps_the_rest(emu: EmulatorHandle) -> None:
    vpc = _vpc(emu)
    a, b, c = (_group(vpc, n) for n in ("a", "b", "c"))
    eni = _eni(vpc, [a])
    assert _groups_of(vpc, eni) == [a]

    def assoc(groups: list[str]) -> None:
        vpc.AssociateNetworkInterfaceSecurityGroups(
            _req(
                vpc_models.AssociateNetworkInterfaceSecurityGroupsRequest,
                NetworkInterfaceIds=[eni],
                SecurityGroupIds=groups,
            )
        )

    assoc([c, b])
    assert _groups_of(vpc, eni) == [a, c, b]
    assoc([b, a])  # held already: no change, no error (a replay is harmless)
    assert _groups_of(vpc, eni) == [a, c, b]
    vpc.DisassociateNetworkInterfaceSecurityGroups(
        _req(
            vpc_models.DisassociateNetworkInterfaceSecurityGroupsRequest,
            NetworkInterfaceIds=[eni],
            SecurityGroupIds=[c],
        )
    )
    assert _groups_of(vpc, eni) == [a, b]
    found = vpc.DescribeNetworkInterfaces(
        _req(
            vpc_models.DescribeNetworkInterfacesRequest,
            Filters=[{"Name": "groups.security-group-id", "Values": [b]}],
        )
    )
    assert [e.NetworkInterfaceId for e in found.NetworkInterfaceSet] == [eni]
    with pytest.raises(TencentCloudSDKException) as missing:
        assoc(["sg-nothere1"])
    assert _code(missing) == "InvalidSecurityGroupID.NotFound"
    with pytest.raises(TencentCloudSDKException) as malformed:
        assoc(["group-1"])
    assert _code(malformed) == "InvalidSecurityGroupID.Malformed"
    more = [_group(vpc, f"m{i}") for i in range(4)]
    with pytest.raises(TencentCloudSDKException) as full:
        assoc(more)
    assert _code(full) == "LimitExceeded"
    assert _groups_of(vpc, eni) == [a, b]  # refused whole: nothing appended


def test_eni_is_created_only_with_groups_that_exist(emu: EmulatorHandle) -> None:
    """CreateNetworkInterface checks its SecurityGroupIds as the association does:
    a missing group (InvalidSecurityGroupID.NotFound), a malformed id, a repeated
    one, more than 5: refused, and no ENI made."""
    vpc = _vpc(emu)
    a, b = _group(vpc, "ca"), _group(vpc, "cb")
    eni = _eni(vpc, [b, a])
    assert _groups_of(vpc, eni) == [b, a]

    def enis() -> int:
        resp = vpc.DescribeNetworkInterfaces(_req(vpc_models.DescribeNetworkInterfacesRequest))
        return int(resp.TotalCount)

    before = enis()
    for groups, code in [
        ([a, "sg-nothere1"], "InvalidSecurityGroupID.NotFound"),
        (["group-1"], "InvalidSecurityGroupID.Malformed"),
        ([a, a], "InvalidParameterValue.Duplicate"),
        ([a, b, *(_group(vpc, f"c{i}") for i in range(4))], "InvalidParameterValue.LimitExceeded"),
    ]:
        with pytest.raises(TencentCloudSDKException) as refused:
            _eni(vpc, groups)
        assert _code(refused) == code, groups
    assert enis() == before


def test_instance_groups_are_its_primary_enis(emu: EmulatorHandle) -> None:
    vpc, cvm = _vpc(emu), _cvm(emu)
    iid = emu.add_instance("subnet-sim00003", "S5.LARGE8")
    inst = cvm.DescribeInstances(
        _req(cvm_models.DescribeInstancesRequest, InstanceIds=[iid])
    ).InstanceSet[0]
    assert inst.SecurityGroupIds == ["sg-sim00001"]  # the default group
    x, y = _group(vpc, "x"), _group(vpc, "y")
    cvm.ModifyInstancesAttribute(
        _req(cvm_models.ModifyInstancesAttributeRequest, InstanceIds=[iid], SecurityGroups=[y, x])
    )
    inst = cvm.DescribeInstances(
        _req(cvm_models.DescribeInstancesRequest, InstanceIds=[iid])
    ).InstanceSet[0]
    assert inst.SecurityGroupIds == [y, x]
    primary = vpc.DescribeNetworkInterfaces(
        _req(
            vpc_models.DescribeNetworkInterfacesRequest,
            Filters=[
                {"Name": "attachment.instance-id", "Values": [iid]},
                {"Name": "is-primary", "Values": ["true"]},
            ],
        )
    ).NetworkInterfaceSet[0]
    assert primary.GroupSet == [y, x]
    with pytest.raises(TencentCloudSDKException) as refused:
        vpc.AssociateNetworkInterfaceSecurityGroups(
            _req(
                vpc_models.AssociateNetworkInterfaceSecurityGroupsRequest,
                NetworkInterfaceIds=[primary.NetworkInterfaceId],
                SecurityGroupIds=[x],
            )
        )
    assert _code(refused) == "UnsupportedOperation"
    with pytest.raises(TencentCloudSDKException) as bad:
        cvm.ModifyInstancesAttribute(
            _req(
                cvm_models.ModifyInstancesAttributeRequest,
                InstanceIds=[iid],
                SecurityGroups=["sg-nothere1"],
            )
        )
    assert _code(bad) == "InvalidSecurityGroupId.NotFound"
