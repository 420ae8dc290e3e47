"""API reply dicts → domain models (pure)."""

from __future__ import annotations

from typing import Any

from cloud.models import Eni, Instance, PrivateIp, Subnet
from core.ids import EniId, InstanceId, SubnetId, VpcId, Zone


def eni_from(d: dict[str, Any]) -> Eni:
    att = d.get("Attachment") or {}
    return Eni(
        eni_id=EniId(d["NetworkInterfaceId"]),
        subnet_id=SubnetId(d.get("SubnetId") or ""),
        vpc_id=VpcId(d.get("VpcId") or ""),
        zone=Zone(d.get("Zone") or ""),
        mac=str(d.get("MacAddress") or "").lower(),
        primary=bool(d.get("Primary")),
        state=str(d.get("State") or ""),
        instance_id=InstanceId(att["InstanceId"]) if att.get("InstanceId") else None,
        device_index=att.get("DeviceIndex") if att.get("InstanceId") else None,
        ips=tuple(
            PrivateIp(
                str(ip["PrivateIpAddress"]),
                bool(ip.get("Primary")),
                str(ip.get("State") or "AVAILABLE"),
            )
            for ip in d.get("PrivateIpAddressSet") or []
        ),
        tags={str(t["Key"]): str(t.get("Value") or "") for t in d.get("TagSet") or []},
        name=str(d.get("NetworkInterfaceName") or ""),
        description=str(d.get("NetworkInterfaceDescription") or ""),
        security_groups=tuple(str(g) for g in d.get("GroupSet") or []),
    )


def subnet_from(d: dict[str, Any]) -> Subnet:
    return Subnet(
        subnet_id=SubnetId(d["SubnetId"]),
        vpc_id=VpcId(d.get("VpcId") or ""),
        cidr=str(d.get("CidrBlock") or ""),
        zone=Zone(d.get("Zone") or ""),
        available_ips=int(d.get("AvailableIpAddressCount") or 0),
        total_ips=int(d.get("TotalIpAddressCount") or 0),
        name=str(d.get("SubnetName") or ""),
    )


def instance_from(d: dict[str, Any]) -> Instance:
    vpc = d.get("VirtualPrivateCloud") or {}
    placement = d.get("Placement") or {}
    ips = vpc.get("PrivateIpAddresses") or d.get("PrivateIpAddresses") or []
    return Instance(
        instance_id=InstanceId(d["InstanceId"]),
        instance_type=str(d.get("InstanceType") or ""),
        zone=Zone(placement.get("Zone") or ""),
        vpc_id=VpcId(vpc.get("VpcId") or ""),
        subnet_id=SubnetId(vpc.get("SubnetId") or ""),
        private_ips=tuple(str(i) for i in ips),
        state=str(d.get("InstanceState") or ""),
        cpu=d.get("CPU"),
        memory_gib=d.get("Memory"),
        security_group_ids=tuple(str(g) for g in d.get("SecurityGroupIds") or []),
    )
