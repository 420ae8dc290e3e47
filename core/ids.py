"""Typed ids, so an ENI id is never passed where an instance id belongs."""

from __future__ import annotations

from typing import NewType

InstanceId = NewType("InstanceId", str)  # ins-xxxxxxxx
EniId = NewType("EniId", str)  # eni-xxxxxxxx
SubnetId = NewType("SubnetId", str)  # subnet-xxxxxxxx
VpcId = NewType("VpcId", str)  # vpc-xxxxxxxx
Zone = NewType("Zone", str)  # ap-guangzhou-3
NodeName = NewType("NodeName", str)
PodUID = NewType("PodUID", str)
IPv4 = NewType("IPv4", str)  # dotted quad, no prefix
