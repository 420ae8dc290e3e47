"""The emulated cloud's resources (dataclasses) and their indexes.

One ``World`` holds a region: VPCs, subnets, instances, ENIs with their IPs,
async tasks and the ClientToken cache. All mutation happens under
``World.lock`` (the server takes it per request). ``to_dict``/``from_dict``
give the JSON form used by the state file, persistence and ``/_admin/state``.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from vpcsim import addressing
from vpcsim.apierror import ApiError
from vpcsim.eip_model import EipBook
from vpcsim.ids import looks_like, new_id, new_mac
from vpcsim.instance_types import eni_quota

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_ROLE = "tke-eni-node-role"
DEFAULT_VPC_ENI_QUOTA = 1000
UNATTACHED_ENI_IP_QUOTA = 30  # an ENI on no instance may hold this many IPs


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())


@dataclass(frozen=True)
class Quota:
    enis: int
    ips_per_eni: int


@dataclass
class Vpc:
    vpc_id: str
    cidr: str
    name: str = ""
    eni_quota: int = DEFAULT_VPC_ENI_QUOTA
    require_security_group: bool = False  # attach refuses an ENI without one


@dataclass
class SgPolicy:
    """One rule of a security group (``vpcsim.security_groups`` validates it):
    ``protocol`` TCP/UDP/ICMP/ALL, ``port`` ``ALL``, ``80``, ``80,443`` or
    ``8000-8080``, ``cidr`` an IPv4 block, ``action`` ACCEPT or DROP."""

    protocol: str
    port: str
    cidr: str
    action: str
    description: str = ""
    modify_time: str = field(default_factory=now_text)


@dataclass
class SecurityGroup:
    sg_id: str
    name: str = ""
    description: str = ""
    is_default: bool = False
    # rules in order (the first match decides); ``version`` counts their changes
    ingress: list[SgPolicy] = field(default_factory=list)
    egress: list[SgPolicy] = field(default_factory=list)
    version: int = 0
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Subnet:
    subnet_id: str
    vpc_id: str
    cidr: str
    zone: str
    name: str = ""
    cursor: int = 0  # next-fit allocation position (index into usable hosts)


@dataclass
class Instance:
    instance_id: str
    instance_type: str
    zone: str
    vpc_id: str
    subnet_id: str
    private_ip: str
    primary_eni_id: str
    state: str = "RUNNING"
    role: str = DEFAULT_ROLE
    name: str = ""
    # quota override for families the table does not know (None = vpcsim.instance_types)
    enis: int | None = None
    ips_per_eni: int | None = None

    def limits(self) -> Quota:
        """ENIs (primary included) and IPs per ENI; an override of 0 ENIs models a
        family that rejects ENIs."""
        enis, ips_per_eni = eni_quota(self.instance_type)
        return Quota(
            self.enis if self.enis is not None else enis,
            self.ips_per_eni if self.ips_per_eni is not None else ips_per_eni,
        )


@dataclass
class Ip:
    address: str
    primary: bool
    state: str = "AVAILABLE"


@dataclass
class Eni:
    eni_id: str
    vpc_id: str
    subnet_id: str
    zone: str
    mac: str
    primary: bool
    name: str = ""
    description: str = ""
    state: str = "AVAILABLE"
    security_groups: list[str] = field(default_factory=list)
    ips: list[Ip] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    instance_id: str | None = None
    device_index: int | None = None
    attach_time: str | None = None
    created_time: str = field(default_factory=now_text)
    busy_task: str | None = None  # task id of the running async task on this ENI

    def ip(self, address: str) -> Ip | None:
        return next((i for i in self.ips if i.address == address), None)


@dataclass
class Task:
    """An async operation. ``kind`` and the fields say what completing it does."""

    task_id: str
    action: str
    kind: str
    eni_id: str
    done_at: float
    status: str = "RUNNING"
    output: str = ""
    fail: bool = False
    instance_id: str | None = None
    addresses: list[str] = field(default_factory=list)
    dest_eni_id: str | None = None


@dataclass
class Idem:
    params_digest: str
    response: dict[str, Any]


def _checked_id(prefix: str, value: object) -> str:
    """A given id must look real (``<prefix>-`` + 8 lowercase alphanumerics)."""
    if value is None or value == "":
        return new_id(prefix)
    if not isinstance(value, str) or not looks_like(prefix, value):
        raise ApiError(
            "InvalidParameterValue.Malformed",
            f"`{value}` is not a valid {prefix} id ({prefix}- and 8 lowercase letters/digits)",
        )
    return value


class World:
    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.lock = threading.RLock()
        self.vpcs: dict[str, Vpc] = {}
        self.security_groups: dict[str, SecurityGroup] = {}
        self.subnets: dict[str, Subnet] = {}
        self.instances: dict[str, Instance] = {}
        self.enis: dict[str, Eni] = {}
        self.tasks: dict[str, Task] = {}
        self.idempotency: dict[str, Idem] = {}
        self.used: dict[str, set[str]] = {}  # subnet id -> addresses in use
        self.eips = EipBook()  # elastic IPs (vpcsim.eips)

    # --- lookups -------------------------------------------------------------
    def subnet(self, subnet_id: str) -> Subnet:
        s = self.subnets.get(subnet_id)
        if s is None:
            raise ApiError("ResourceNotFound", f"the subnet `{subnet_id}` does not exist")
        return s

    def eni(self, eni_id: str) -> Eni:
        e = self.enis.get(eni_id)
        if e is None:
            raise ApiError("ResourceNotFound", f"the network interface `{eni_id}` does not exist")
        return e

    def instance(self, instance_id: str) -> Instance:
        i = self.instances.get(instance_id)
        if i is None:
            raise ApiError("ResourceNotFound", f"the instance `{instance_id}` does not exist")
        return i

    def enis_of(self, instance_id: str) -> list[Eni]:
        return sorted(
            (e for e in self.enis.values() if e.instance_id == instance_id),
            key=lambda e: (e.device_index if e.device_index is not None else 99, e.eni_id),
        )

    def available_count(self, subnet_id: str) -> int:
        s = self.subnets[subnet_id]
        return addressing.usable_count(s.cidr) - len(self.used.get(subnet_id, ()))

    # --- address allocation -------------------------------------------------
    def take_address(self, subnet_id: str, address: str) -> None:
        s = self.subnet(subnet_id)
        try:
            ipaddress.IPv4Address(address)
        except ValueError as exc:
            raise ApiError(
                "InvalidParameterValue.Malformed", f"`{address}` is not an IPv4 address"
            ) from exc
        if not addressing.in_block(s.cidr, address):
            raise ApiError(
                "InvalidParameterValue.Range",
                f"the address `{address}` is not in subnet `{subnet_id}` ({s.cidr})",
            )
        if not addressing.is_usable(s.cidr, address):
            raise ApiError("InvalidParameterValue.Reserved", f"the address `{address}` is reserved")
        used = self.used.setdefault(subnet_id, set())
        if address in used:
            raise ApiError("ResourceInUse", f"the address `{address}` is already in use")
        used.add(address)

    def allocate(self, subnet_id: str, count: int) -> list[str]:
        """``count`` free addresses (next-fit), or ResourceInsufficient.Subnet."""
        s = self.subnet(subnet_id)
        if self.available_count(subnet_id) < count:
            raise ApiError(
                "ResourceInsufficient.Subnet",
                f"subnet `{subnet_id}` has {self.available_count(subnet_id)} free addresses, "
                f"{count} requested",
            )
        first = addressing.first_usable(s.cidr)
        size = addressing.usable_count(s.cidr)
        used = self.used.setdefault(subnet_id, set())
        out: list[str] = []
        pos = s.cursor % size
        while len(out) < count:
            addr = str(ipaddress.IPv4Address(first + pos))
            pos = (pos + 1) % size
            if addr not in used:
                used.add(addr)
                out.append(addr)
        s.cursor = pos
        return out

    def release(self, subnet_id: str, addresses: list[str]) -> None:
        used = self.used.setdefault(subnet_id, set())
        for a in addresses:
            used.discard(a)

    # --- building -------------------------------------------------------------
    def add_vpc(self, cidr: str, name: str = "", vpc_id: str | None = None) -> Vpc:
        ipaddress.IPv4Network(cidr, strict=True)  # ValueError names a bad block
        vpc = Vpc(_checked_id("vpc", vpc_id), cidr, name)
        self.vpcs[vpc.vpc_id] = vpc
        return vpc

    def add_security_group(
        self,
        name: str = "",
        sg_id: str | None = None,
        *,
        description: str = "",
        default: bool = False,
    ) -> SecurityGroup:
        sg = SecurityGroup(_checked_id("sg", sg_id), name, description, default)
        self.security_groups[sg.sg_id] = sg
        return sg

    def add_subnet(
        self, vpc_id: str, cidr: str, zone: str, name: str = "", subnet_id: str | None = None
    ) -> Subnet:
        if vpc_id not in self.vpcs:
            raise ApiError("ResourceNotFound", f"the VPC `{vpc_id}` does not exist")
        addressing.subnet_block(cidr)
        vpc_net = ipaddress.IPv4Network(self.vpcs[vpc_id].cidr)
        if not ipaddress.IPv4Network(cidr).subnet_of(vpc_net):
            raise ApiError("InvalidParameterValue.Range", f"subnet {cidr} is outside VPC {vpc_net}")
        for other in self.subnets.values():
            if other.vpc_id == vpc_id and ipaddress.IPv4Network(other.cidr).overlaps(
                ipaddress.IPv4Network(cidr)
            ):
                raise ApiError(
                    "InvalidParameterValue.SubnetConflict",
                    f"subnet {cidr} overlaps {other.subnet_id} ({other.cidr})",
                )
        s = Subnet(_checked_id("subnet", subnet_id), vpc_id, cidr, zone, name)
        self.subnets[s.subnet_id] = s
        self.used.setdefault(s.subnet_id, set())
        return s

    def add_instance(
        self,
        subnet_id: str,
        instance_type: str = "S5.LARGE8",
        *,
        instance_id: str | None = None,
        private_ip: str | None = None,
        name: str = "",
        role: str = DEFAULT_ROLE,
        enis: int | None = None,
        ips_per_eni: int | None = None,
        state: str = "RUNNING",
        security_groups: list[str] | None = None,
    ) -> Instance:
        """``security_groups``: those of its primary ENI (None: the default groups,
        as a CVM created without any gets its project's default group)."""
        s = self.subnet(subnet_id)
        if security_groups is None:
            security_groups = [g.sg_id for g in self.security_groups.values() if g.is_default]
        for sg_id in security_groups:
            if sg_id not in self.security_groups:
                raise ApiError("InvalidSecurityGroupID.NotFound", f"`{sg_id}` does not exist")
        eni_quota(instance_type)  # validates the type name
        iid = _checked_id("ins", instance_id)
        if iid in self.instances:
            raise ApiError("ResourceInUse", f"the instance `{iid}` already exists")
        if private_ip:
            self.take_address(subnet_id, private_ip)
            ip = private_ip
        else:
            ip = self.allocate(subnet_id, 1)[0]
        eni = Eni(
            eni_id=new_id("eni"),
            vpc_id=s.vpc_id,
            subnet_id=subnet_id,
            zone=s.zone,
            mac=new_mac(),
            primary=True,
            name="primary",
            security_groups=list(security_groups),
            ips=[Ip(ip, True)],
            instance_id=iid,
            device_index=0,
            attach_time=now_text(),
        )
        self.enis[eni.eni_id] = eni
        inst = Instance(
            iid,
            instance_type,
            s.zone,
            s.vpc_id,
            subnet_id,
            ip,
            eni.eni_id,
            state,
            role,
            name,
            enis,
            ips_per_eni,
        )
        self.instances[iid] = inst
        return inst

    # --- (de)serialisation -----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "vpcs": [asdict(v) for v in self.vpcs.values()],
            "security_groups": [asdict(g) for g in self.security_groups.values()],
            "subnets": [
                {**asdict(s), "available_ip_count": self.available_count(s.subnet_id)}
                for s in self.subnets.values()
            ],
            "instances": [asdict(i) for i in self.instances.values()],
            "enis": [asdict(e) for e in self.enis.values()],
            "tasks": [asdict(t) for t in self.tasks.values()],
            "idempotency": {k: asdict(v) for k, v in self.idempotency.items()},
            "eips": self.eips.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> World:
        """Load a full dump (as written by ``to_dict``)."""
        w = cls(str(data.get("region", DEFAULT_REGION)))
        for v in data.get("vpcs", []):
            w.vpcs[v["vpc_id"]] = Vpc(**v)
        for g in data.get("security_groups", []):
            rules = {d: [SgPolicy(**r) for r in g.get(d, [])] for d in ("ingress", "egress")}
            w.security_groups[g["sg_id"]] = SecurityGroup(**{**g, **rules})
        for raw in data.get("subnets", []):
            s = {k: val for k, val in raw.items() if k != "available_ip_count"}
            w.subnets[s["subnet_id"]] = Subnet(**s)
            w.used.setdefault(s["subnet_id"], set())
        for i in data.get("instances", []):
            w.instances[i["instance_id"]] = Instance(**i)
        for e in data.get("enis", []):
            ips = [Ip(**ip) for ip in e.get("ips", [])]
            eni = Eni(**{**e, "ips": ips})
            w.enis[eni.eni_id] = eni
            w.used.setdefault(eni.subnet_id, set()).update(ip.address for ip in ips)
        for t in data.get("tasks", []):
            w.tasks[t["task_id"]] = Task(**t)
        for k, v in data.get("idempotency", {}).items():
            w.idempotency[k] = Idem(**v)
        w.eips = EipBook.from_dict(data.get("eips"))
        return w
