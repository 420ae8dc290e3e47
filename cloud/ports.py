"""Narrow domain ports for what ipamd and the node need from the cloud.

Every write waits for its asynchronous task (DescribeVpcTaskResult / resource
state) before it returns, with the deadline in the adapter's settings, and
raises ``TaskFailedError`` with the task output on FAILED. Writes take a
``client_token`` where the API has one, so a replayed call is harmless.
Requests over the API's limit of 10 IPs per call are split by the adapter;
``gone_ok`` makes "already gone" count as done (the adapter decides what
"gone" means for each call, once for every caller).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from cloud.eips import EipApi
from cloud.models import Eni, Instance, Subnet
from cloud.security_groups import SecurityGroupWriter
from core.ids import EniId, InstanceId, SubnetId, VpcId
from core.limits import EniLimits


class InstanceReader(Protocol):
    def describe_instances(self, instance_ids: Sequence[InstanceId]) -> list[Instance]: ...

    def eni_limits(self, instance_id: InstanceId) -> EniLimits:
        """DescribeNetworkInterfaceLimit (source ``api``)."""
        ...


class SubnetReader(Protocol):
    def describe_subnets(
        self, subnet_ids: Sequence[SubnetId] = (), *, vpc_id: VpcId | None = None
    ) -> list[Subnet]: ...


class EniReader(Protocol):
    def describe_enis(
        self,
        *,
        eni_ids: Sequence[EniId] = (),
        instance_id: InstanceId | None = None,
        subnet_id: SubnetId | None = None,
        vpc_id: VpcId | None = None,
        tags: Mapping[str, str] | None = None,
        address: str | None = None,
    ) -> list[Eni]:
        """DescribeNetworkInterfaces with paging; filters AND together."""
        ...


class EniWriter(Protocol):
    def create_eni(
        self,
        *,
        vpc_id: VpcId,
        subnet_id: SubnetId,
        name: str,
        description: str = "",
        security_group_ids: Sequence[str] = (),
        secondary_ip_count: int = 0,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
        instance_id: InstanceId | None = None,
    ) -> Eni:
        """Create an ENI tagged with the cluster id and the creator (from the
        adapter's settings) and (when given) the instance it is meant for; waits
        until it is AVAILABLE. More than 10 IPs are assigned after the create."""
        ...

    def attach_eni(
        self, eni_id: EniId, instance_id: InstanceId, *, client_token: str | None = None
    ) -> None: ...

    def detach_eni(
        self,
        eni_id: EniId,
        instance_id: InstanceId,
        *,
        client_token: str | None = None,
        gone_ok: bool = False,
    ) -> None:
        """``gone_ok``: the ENI gone, or refused as not attached there, is done."""
        ...

    def delete_eni(self, eni_id: EniId, *, gone_ok: bool = False) -> None:
        """``gone_ok``: the ENI gone is done."""
        ...


class IpWriter(Protocol):
    def assign_ips(
        self,
        eni_id: EniId,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]:
        """AssignPrivateIpAddresses (≤10 per call; the adapter batches); returns the IPs."""
        ...

    def unassign_ips(
        self, eni_id: EniId, addresses: Sequence[str], *, gone_ok: bool = False
    ) -> None:
        """≤10 per call (the adapter batches). ``gone_ok``: the addresses or the
        ENI gone (or the ENI in no state to hold them) is done."""
        ...

    def migrate_ip(self, source_eni_id: EniId, destination_eni_id: EniId, address: str) -> None: ...


class CloudApi(
    InstanceReader,
    SubnetReader,
    EniReader,
    EniWriter,
    IpWriter,
    SecurityGroupWriter,
    EipApi,
    Protocol,
):
    """Everything ipamd uses. The device plugin needs only ``InstanceReader``."""
