"""World objects → API reply shapes (the JSON the real API sends)."""

from __future__ import annotations

from typing import Any

from vpcsim import addressing
from vpcsim.instance_types import shape
from vpcsim.world import Eni, Instance, Subnet, World


def eni_json(world: World, eni: Eni) -> dict[str, Any]:
    attachment = None
    if eni.instance_id is not None:
        attachment = {
            "InstanceId": eni.instance_id,
            "DeviceIndex": eni.device_index,
            "InstanceAccountId": "100000000001",
            "AttachTime": eni.attach_time,
        }
    return {
        "NetworkInterfaceId": eni.eni_id,
        "NetworkInterfaceName": eni.name,
        "NetworkInterfaceDescription": eni.description,
        "SubnetId": eni.subnet_id,
        "VpcId": eni.vpc_id,
        "GroupSet": list(eni.security_groups),
        "Primary": eni.primary,
        "MacAddress": eni.mac,
        "State": eni.state,
        "NetworkInterfaceState": eni.state,
        "PrivateIpAddressSet": [
            {
                "PrivateIpAddress": ip.address,
                "Primary": ip.primary,
                "PublicIpAddress": "",
                "AddressId": "",
                "Description": "",
                "IsWanIpBlocked": False,
                "State": ip.state,
                "QosLevel": "DEFAULT",
            }
            for ip in eni.ips
        ],
        "Attachment": attachment,
        "Zone": eni.zone,
        "CreatedTime": eni.created_time,
        "Ipv6AddressSet": [],
        "TagSet": [{"Key": k, "Value": v} for k, v in sorted(eni.tags.items())],
        "EniType": 1 if eni.primary else 0,
        "Business": "cvm",
        "CdcId": "",
        "AttachType": 0,
        "ResourceId": "",
        "QosLevel": "DEFAULT",
    }


def subnet_json(world: World, s: Subnet) -> dict[str, Any]:
    return {
        "VpcId": s.vpc_id,
        "SubnetId": s.subnet_id,
        "SubnetName": s.name,
        "CidrBlock": s.cidr,
        "IsDefault": False,
        "EnableBroadcast": False,
        "Zone": s.zone,
        "RouteTableId": "rtb-" + s.vpc_id.removeprefix("vpc-"),
        "CreatedTime": "2026-01-01 00:00:00",
        "AvailableIpAddressCount": world.available_count(s.subnet_id),
        "TotalIpAddressCount": addressing.usable_count(s.cidr),
        "NetworkAclId": "",
        "IsRemoteVpcSnat": False,
        "TagSet": [],
        "CdcId": "",
        "IsCdcSubnet": 0,
    }


def instance_json(world: World, inst: Instance) -> dict[str, Any]:
    parsed = shape(inst.instance_type)
    return {
        "Placement": {"Zone": inst.zone, "ProjectId": 0},
        "InstanceId": inst.instance_id,
        "InstanceType": inst.instance_type,
        "CPU": parsed.vcpu,
        "Memory": int(parsed.memory_gib or 0),
        "RestrictState": "NORMAL",
        "InstanceName": inst.name or inst.instance_id,
        "InstanceChargeType": "POSTPAID_BY_HOUR",
        "PrivateIpAddresses": [inst.private_ip],
        "PublicIpAddresses": None,
        "VirtualPrivateCloud": {
            "VpcId": inst.vpc_id,
            "SubnetId": inst.subnet_id,
            "AsVpcGateway": False,
            "PrivateIpAddresses": [inst.private_ip],
        },
        "ImageId": "img-sim00001",
        "InstanceState": inst.state,
        "OsName": "TencentOS Server 3.1",
        "CreatedTime": "2026-01-01T00:00:00Z",
        "Uuid": inst.instance_id,
        "SecurityGroupIds": _primary_groups(world, inst),
        "Tags": [],
    }


def _primary_groups(world: World, inst: Instance) -> list[str]:
    """An instance's security groups are those of its primary ENI."""
    primary = world.enis.get(inst.primary_eni_id)
    return list(primary.security_groups) if primary is not None else []
