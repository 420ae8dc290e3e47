"""Elastic IPs (EIPs) of the emulated region: the records, their async tasks and
the pool of public addresses they come from. ``World.eips`` holds one ``EipBook``;
``vpcsim.eips`` implements the API actions over it.

Address states as the API names them: ``CREATING`` → ``UNBIND`` (allocated);
``BINDING`` → ``BIND``; ``UNBINDING`` → ``UNBIND``; ``OFFLINING`` → gone. Each
transition is an async task (numeric ``TaskId``, ``DescribeTaskResult``); a
failed task rolls the address back. This module does no I/O and takes no lock:
the server holds ``World.lock`` around every call."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field
from typing import Any

#: the public block EIPs come from (TEST-NET-3: never routed anywhere real)
DEFAULT_POOL = "203.0.113.0/24"
#: TOTAL_EIP_QUOTA: EIPs per account and region ("最多可创建 20 个 EIP")
DEFAULT_QUOTA = 20


def iso_now() -> str:
    """The API's time format for EIPs: ISO 8601 UTC, ``YYYY-MM-DDThh:mm:ssZ``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Eip:
    address_id: str
    address_ip: str
    status: str = "CREATING"
    name: str = ""
    isp: str = "BGP"
    bandwidth: int = 1
    charge_type: str = "TRAFFIC_POSTPAID_BY_HOUR"
    eni_id: str | None = None
    private_ip: str | None = None
    instance_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    created_time: str = field(default_factory=iso_now)
    busy_task: int | None = None


@dataclass
class EipTask:
    """``kind``: allocate, associate, disassociate or release; ``fail`` decided
    at call time (the fault knob), applied when ``done_at`` has passed."""

    task_id: int
    kind: str
    address_ids: list[str]
    done_at: float
    fail: bool = False
    status: str = "RUNNING"  # RUNNING, SUCCESS, FAILED


@dataclass
class EipBook:
    pool: str = DEFAULT_POOL
    quota: int = DEFAULT_QUOTA
    addresses: dict[str, Eip] = field(default_factory=dict)
    tasks: dict[int, EipTask] = field(default_factory=dict)
    next_task: int = 1_000_001
    cursor: int = 0  # next-fit position in the pool

    def free_ip(self) -> str | None:
        """The next public address no EIP holds (next-fit), or None when the pool is spent."""
        net = ipaddress.IPv4Network(self.pool)
        hosts = [str(h) for h in net.hosts()]
        used = {e.address_ip for e in self.addresses.values()}
        for i in range(len(hosts)):
            candidate = hosts[(self.cursor + i) % len(hosts)]
            if candidate not in used:
                self.cursor = (self.cursor + i + 1) % len(hosts)
                return candidate
        return None

    def new_task(self, kind: str, address_ids: list[str], delay_s: float, fail: bool) -> EipTask:
        task = EipTask(self.next_task, kind, list(address_ids), time.monotonic() + delay_s, fail)
        self.next_task += 1
        self.tasks[task.task_id] = task
        for a in address_ids:
            self.addresses[a].busy_task = task.task_id
        return task

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "quota": self.quota,
            "addresses": [asdict(e) for e in self.addresses.values()],
            "tasks": [asdict(t) for t in self.tasks.values()],
            "next_task": self.next_task,
            "cursor": self.cursor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EipBook:
        if not data:
            return cls()
        book = cls(
            pool=str(data.get("pool", DEFAULT_POOL)),
            quota=int(data.get("quota", DEFAULT_QUOTA)),
            next_task=int(data.get("next_task", 1_000_001)),
            cursor=int(data.get("cursor", 0)),
        )
        for e in data.get("addresses", []):
            book.addresses[e["address_id"]] = Eip(**e)
        for t in data.get("tasks", []):
            book.tasks[int(t["task_id"])] = EipTask(**t)
        return book
