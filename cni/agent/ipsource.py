"""The agent's port for "this node's ENIs and IPs" (``NodeIpSource``) and two
implementations that need no Kubernetes: an in-memory one (tests, embedding)
and a file-fed one (a JSON file another process writes; a cluster without
ipamd). The Kubernetes implementation lives in ``kube_ipsource``.

Semantics follow ``core.models``: an IP is offered to pods only while its
``state`` is ``Assigned``; an IP with ``claim`` only to that claim's pod (and,
when ``reserved_pod_uid`` is set, only to that UID). Usage flows back through
``report`` (the ``VpcIP.status`` writer), never on the CNI hot path; a grant
(phase ``Released``) carries the ``release_id`` of the request it answers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.ids import EniId, IPv4
from core.models import IP_STATE_ASSIGNED, unclaimed_uid

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EniInfo:
    eni_id: EniId
    mac: str  # lower-case, colon-separated
    subnet_cidr: str
    gateway: IPv4
    primary_ip: IPv4
    zone: str = ""  # VpcENI spec.zone (ipamd's), "" when unknown
    ip_capacity: int | None = None  # VpcENI status.ipCapacity: IPs per ENI, primary included


@dataclass(frozen=True, slots=True)
class NodeIp:
    ip: IPv4
    eni_id: EniId
    state: str = IP_STATE_ASSIGNED
    claim: str = ""  # "<namespace>/<name>" for a static pod's IP
    reserved_pod_uid: str = ""
    release_id: str = ""  # spec.releaseId: the open release request (state Releasing)
    # core.models.unclaimed_uid: the pod whose claim was deleted while it ran with
    # this IP; that pod UID is dynamic now, and this IP its own
    unclaimed_pod_uid: str = ""


@dataclass(frozen=True, slots=True)
class NodeIpView:
    enis: tuple[EniInfo, ...] = ()
    ips: tuple[NodeIp, ...] = ()
    generation: int = 0

    def eni(self, eni_id: str) -> EniInfo | None:
        return next((e for e in self.enis if e.eni_id == eni_id), None)

    def ip(self, ip: str) -> NodeIp | None:
        return next((i for i in self.ips if i.ip == ip), None)


@dataclass(frozen=True, slots=True)
class IpUsage:
    """What the agent reports for one IP (``VpcIP.status``)."""

    ip: IPv4
    phase: str  # core.models IP_PHASE_*
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    container_id: str = ""
    cooldown_until: float | None = None  # unix time
    release_id: str = ""  # with phase Released: the request this answer grants

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in _asdict(self).items() if v not in ("", None)}


def _asdict(u: IpUsage) -> dict[str, Any]:
    return {
        "ip": u.ip,
        "phase": u.phase,
        "podNamespace": u.pod_namespace,
        "podName": u.pod_name,
        "podUid": u.pod_uid,
        "containerId": u.container_id,
        "cooldownUntil": u.cooldown_until,
        "releaseId": u.release_id,
    }


class NodeIpSource(Protocol):
    """This node's ENIs and IPs, and where their usage is reported."""

    def view(self) -> NodeIpView: ...

    def wait_for_change(self, generation: int, timeout: float) -> NodeIpView:
        """Return as soon as the view's generation differs from ``generation``,
        or after ``timeout`` seconds with the current view."""
        ...

    def report(self, usage: Sequence[IpUsage]) -> None:
        """Publish usage (may block on I/O: called off the CNI hot path)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class MemoryNodeIpSource:
    """In-memory source: tests set the view; reports are kept."""

    _view: NodeIpView = field(default_factory=NodeIpView)
    reported: dict[str, IpUsage] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def view(self) -> NodeIpView:
        with self._cond:
            return self._view

    def set_view(self, enis: Sequence[EniInfo], ips: Sequence[NodeIp]) -> None:
        with self._cond:
            self._view = NodeIpView(tuple(enis), tuple(ips), self._view.generation + 1)
            self._cond.notify_all()

    def wait_for_change(self, generation: int, timeout: float) -> NodeIpView:
        with self._cond:
            self._cond.wait_for(lambda: self._view.generation != generation, timeout)
            return self._view

    def report(self, usage: Sequence[IpUsage]) -> None:
        with self._cond:
            for u in usage:
                self.reported[u.ip] = u

    def held(self) -> dict[str, dict[str, Any]]:
        """What was reported, as the status it would be (``IpUsage.to_dict``)."""
        with self._cond:
            return {ip: u.to_dict() for ip, u in self.reported.items()}

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def view_from_json(data: dict[str, Any], generation: int) -> NodeIpView:
    """``{"enis": [{"id","mac","subnetCidr","gateway","primaryIp","zone","ipCapacity"}],
    "ips": [{"ip","eni","state","claim","reservedPodUid","releaseId"}]}`` (VpcIP spec names)"""
    enis = tuple(
        EniInfo(
            eni_id=EniId(str(e["id"])),
            mac=str(e["mac"]).lower(),
            subnet_cidr=str(e.get("subnetCidr", "")),
            gateway=IPv4(str(e["gateway"])),
            primary_ip=IPv4(str(e.get("primaryIp", ""))),
            zone=str(e.get("zone") or ""),
            ip_capacity=int(e["ipCapacity"]) if e.get("ipCapacity") else None,
        )
        for e in data.get("enis") or []
    )
    ips = tuple(
        NodeIp(
            ip=IPv4(str(i["ip"])),
            eni_id=EniId(str(i["eni"])),
            state=str(i.get("state") or IP_STATE_ASSIGNED),
            claim=str(i.get("claim") or ""),
            reserved_pod_uid=str(i.get("reservedPodUid") or ""),
            release_id=str(i.get("releaseId") or ""),
            unclaimed_pod_uid=unclaimed_uid(
                str(i.get("claim") or ""), str(i.get("unclaimedPodUid") or "")
            ),
        )
        for i in data.get("ips") or []
    )
    return NodeIpView(enis, ips, generation)


class FileNodeIpSource:
    """Reads the view from a JSON file (re-read when it changes, polled every
    ``poll`` seconds) and writes usage to ``<file>.status.json`` atomically.
    A missing or bad file keeps the last good view (logged)."""

    def __init__(self, path: str, poll: float = 0.5) -> None:
        self.path = path
        self.status_path = path + ".status.json"
        self.poll = poll
        self._mem = MemoryNodeIpSource()
        self._stamp: tuple[int, int] | None = None
        self._status: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            view = view_from_json(data, 0)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ip source file unreadable", extra={"path": self.path, "error": str(exc)})
            return
        self._stamp = stamp
        self._mem.set_view(view.enis, view.ips)

    def view(self) -> NodeIpView:
        return self._mem.view()

    def wait_for_change(self, generation: int, timeout: float) -> NodeIpView:
        return self._mem.wait_for_change(generation, timeout)

    def report(self, usage: Sequence[IpUsage]) -> None:
        with self._lock:
            for u in usage:
                self._status[u.ip] = u.to_dict()
            tmp = self.status_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self._status, fh, sort_keys=True)
            os.replace(tmp, self.status_path)

    def held(self) -> dict[str, dict[str, Any]]:
        """The usage file as it is on disk (what this source's "API" holds)."""
        try:
            with open(self.status_path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(ip): dict(u) for ip, u in data.items() if isinstance(u, dict)}

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.refresh()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ip-source-file", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
