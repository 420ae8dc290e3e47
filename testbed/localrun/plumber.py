"""The ENI plumber: the emulated cloud's attach/detach made physical.

Every ``interval`` it reads the emulator's state (``GET /_admin/state``) and reconciles
the fabric namespace against the ENIs attached to instances that are real local nodes:
a veth per ENI (fabric side named as the ENI id, node side ``eth<device index>`` with the
ENI's MAC, left down for the agent), the subnet gateway address on the fabric side, and a
/32 route + permanent neighbour per ENI IP (the VPC's SDN). Detach removes the link. The
ENIs' security groups are enforced on what the fabric forwards into them
(``localrun.sgfabric``, one nftables table replaced when they change). The internet beside
the fabric and the EIPs bound in the emulator are kept in step (``localrun.eipfabric``). It
writes nothing to the cloud and nothing to Kubernetes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localnode.netns import ip
from localnode.proc import ProcessError, run
from localrun.cloudspec import gateway_of
from localrun.eipfabric import EipFabric
from localrun.sgfabric import SgFabric

log = logging.getLogger("localrun.plumber")


@dataclass(frozen=True)
class EniLink:
    eni_id: str
    netns: str  # the node's network namespace
    ifname: str
    mac: str
    gateway: str
    ips: frozenset[str]


def desired_links(state: Mapping[str, Any], nodes: Mapping[str, str]) -> dict[str, EniLink]:
    """ENI id -> link, for secondary ENIs attached to an instance in ``nodes``
    (instance id -> node netns). Pure."""
    cidrs = {s["subnet_id"]: s["cidr"] for s in state.get("subnets", [])}
    out: dict[str, EniLink] = {}
    for eni in state.get("enis", []):
        inst = eni.get("instance_id")
        if eni.get("primary") or inst not in nodes or eni.get("device_index") is None:
            continue
        out[eni["eni_id"]] = EniLink(
            eni["eni_id"], nodes[inst], f"eth{eni['device_index']}", str(eni["mac"]).lower(),
            gateway_of(cidrs[eni["subnet_id"]]),
            frozenset(a["address"] for a in eni.get("ips", [])))
    return out


@dataclass
class PlumberStats:
    passes: int = 0
    links_added: int = 0
    links_removed: int = 0
    routes_changed: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class Plumber:
    fabric: str
    read_state: Callable[[], Mapping[str, Any]]
    interval: float = 0.2
    nodes: dict[str, str] = field(default_factory=dict)  # instance id -> node netns
    stats: PlumberStats = field(default_factory=PlumberStats)
    _applied: dict[str, EniLink] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pass_lock: threading.Lock = field(default_factory=threading.Lock)  # one pass at a time
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sg: SgFabric | None = None  # the ENIs' security groups, enforced in the fabric
    _eip: EipFabric | None = None  # the internet beside the fabric and the bound EIPs

    def add_node(self, instance_id: str, netns: str) -> None:
        with self._lock:
            self.nodes[instance_id] = netns

    def start(self) -> None:
        for key in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
            run(["sysctl", "-qw", f"net.ipv4.{key}"], netns=self.fabric)
        self._thread = threading.Thread(target=self._loop, name="eni-plumber", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        EipFabric(self.fabric).down()  # the internet namespace, made or not by this process

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive a bad pass
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                log.warning("plumber pass failed: %s", exc)
            self._stop.wait(self.interval)

    def reconcile_once(self) -> None:
        with self._pass_lock:
            self._reconcile()

    def _reconcile(self) -> None:
        with self._lock:
            nodes = dict(self.nodes)
        state = self.read_state()
        want = desired_links(state, nodes)
        for eni_id, have in list(self._applied.items()):
            new = want.get(eni_id)
            if new is None or (new.netns, new.ifname, new.mac) != (have.netns, have.ifname,
                                                                  have.mac):
                self._remove(have)
        for eni_id, link in want.items():
            have_link = self._applied.get(eni_id)
            if have_link is None:
                self._add(link)
            elif have_link.ips != link.ips:
                self._routes(link, have_link.ips)
        if self._sg is None:
            self._sg = SgFabric(self.fabric)
        self._sg.apply(state, self._applied)
        if self._eip is None:
            self._eip = EipFabric(self.fabric)
        self._eip.apply(state)
        self.stats.passes += 1

    # ---- netlink (through ip(8)) ----------------------------------------------------------
    def _add(self, link: EniLink) -> None:
        log.info("plug %s into %s as %s (%s), %d IPs", link.eni_id, link.netns, link.ifname,
                 link.mac, len(link.ips))
        self._delete_quietly(self.fabric, link.eni_id)
        self._delete_quietly(link.netns, link.ifname)
        ip(self.fabric, "link", "add", link.eni_id, "type", "veth", "peer", "name",
           link.ifname, "netns", link.netns)
        ip(link.netns, "link", "set", link.ifname, "address", link.mac)
        ip(self.fabric, "addr", "add", f"{link.gateway}/32", "dev", link.eni_id)
        ip(self.fabric, "link", "set", link.eni_id, "up")
        self._applied[link.eni_id] = EniLink(link.eni_id, link.netns, link.ifname, link.mac,
                                             link.gateway, frozenset())
        self.stats.links_added += 1
        self._routes(link, frozenset())

    def _routes(self, link: EniLink, had: frozenset[str]) -> None:
        for addr in sorted(had - link.ips):
            with contextlib.suppress(ProcessError):  # already moved to another ENI
                ip(self.fabric, "route", "del", f"{addr}/32", "dev", link.eni_id)
            self.stats.routes_changed += 1
        for addr in sorted(link.ips - had):
            ip(self.fabric, "route", "replace", f"{addr}/32", "dev", link.eni_id)
            ip(self.fabric, "neigh", "replace", addr, "lladdr", link.mac, "dev", link.eni_id,
               "nud", "permanent")
            self.stats.routes_changed += 1
        self._applied[link.eni_id] = link

    def _remove(self, link: EniLink) -> None:
        log.info("unplug %s from %s (%s)", link.eni_id, link.netns, link.ifname)
        self._delete_quietly(self.fabric, link.eni_id)
        self._applied.pop(link.eni_id, None)
        self.stats.links_removed += 1

    @staticmethod
    def _delete_quietly(netns: str, ifname: str) -> None:
        with contextlib.suppress(ProcessError):  # not there (or gone with the node)
            ip(netns, "link", "del", ifname)
