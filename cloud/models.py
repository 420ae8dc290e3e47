"""Domain models of the cloud resources we use. The adapter maps SDK models to
these; nothing outside ``cloud`` sees an SDK type."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.ids import EniId, InstanceId, SubnetId, VpcId, Zone


@dataclass(frozen=True, slots=True)
class Instance:
    instance_id: InstanceId
    instance_type: str
    zone: Zone
    vpc_id: VpcId
    subnet_id: SubnetId
    private_ips: tuple[str, ...] = ()
    state: str = "RUNNING"
    cpu: int | None = None
    memory_gib: int | None = None
    security_group_ids: tuple[str, ...] = ()  # those of its primary ENI, in order


@dataclass(frozen=True, slots=True)
class Subnet:
    subnet_id: SubnetId
    vpc_id: VpcId
    cidr: str
    zone: Zone
    available_ips: int
    total_ips: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class PrivateIp:
    address: str
    primary: bool
    state: str = "AVAILABLE"


@dataclass(frozen=True, slots=True)
class Eni:
    eni_id: EniId
    subnet_id: SubnetId
    vpc_id: VpcId
    zone: Zone
    mac: str  # lower-case, colon-separated (the API returns upper-case)
    primary: bool
    state: str  # PENDING, AVAILABLE, ATTACHING, DETACHING, DELETING
    instance_id: InstanceId | None = None
    device_index: int | None = None
    ips: tuple[PrivateIp, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    security_groups: tuple[str, ...] = ()  # GroupSet: the first has the highest priority

    @property
    def primary_ip(self) -> str | None:
        return next((ip.address for ip in self.ips if ip.primary), None)

    @property
    def secondary_ips(self) -> tuple[str, ...]:
        return tuple(ip.address for ip in self.ips if not ip.primary)
