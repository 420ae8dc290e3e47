"""The node's data plane: the host set-up through pyroute2 (sysctls, ENI
links and their route tables, dumps of rules and links, CHECK), and the pod
plumbing of the CNI hot path through ``podnet``. Every ``ensure_*`` returns
the drift it corrected, so the reconcile loop can log and count it.

Threads: a host-side ``IPRoute`` is checked out of a small pool for the
duration of one call; pod-side work opens a fresh ``IPRoute`` inside
``in_netns`` (the socket binds to the netns it is created in)."""

from __future__ import annotations

import errno
import logging
import os
import queue
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..cnitypes import ERR_CHECK_FAILED, GATEWAY, CniError, PodAttachment
from ..ipsource import EniInfo
from ..pool import Allocation
from .nsutil import NetnsGoneError, in_netns
from .podnet import PRIO_FROM_POD, PRIO_TO_POD, PodPlumber

log = logging.getLogger(__name__)

TABLE_MAIN = 254
TABLE_OFFSET = 2000  # an ENI's route table: its link index + 2000 (as TKE numbers it)
NUD_PERMANENT = 0x80
SCOPE_LINK = 253
IFF_UP = 0x1
SYSCTL_ROOT = "/proc/sys/net/ipv4"
NETNS_DIRS = ("/run/netns", "/var/run/netns")  # where runtimes name pod netns

Fault = Callable[[str], None]


def _no_fault(step: str) -> None:
    return None


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


@dataclass(frozen=True, slots=True)
class EniLink:
    eni_id: str
    ifname: str
    index: int
    table: int


def _read_sysctl(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(value)


def ensure_sysctl(name: str, value: str) -> list[str]:
    """``name`` relative to /proc/sys/net/ipv4 (e.g. ``conf/all/rp_filter``)."""
    path = f"{SYSCTL_ROOT}/{name}"
    try:
        current = _read_sysctl(path)
    except FileNotFoundError:
        return []  # the link went away
    if current == value:
        return []
    _write_sysctl(path, value)
    return [f"sysctl {name}={current} (want {value})"]


class NetOps:
    def __init__(self, mtu: int = 1500, fault: Fault = _no_fault) -> None:
        self.mtu = mtu
        self.fault = fault
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # late-bound: the agent sets self.fault after construction
        self.plumber = PodPlumber(mtu, lambda step: self.fault(step))  # noqa: PLW0108

    # --- plumbing -------------------------------------------------------
    @contextmanager
    def host(self) -> Iterator[Any]:
        """A host-netns IPRoute for this call (never call inside in_netns)."""
        try:
            ipr = self._pool.get_nowait()
        except queue.Empty:
            ipr = IPRoute()
        ok = False
        try:
            yield ipr
            ok = True
        finally:
            if ok:
                self._pool.put(ipr)
            else:
                ipr.close()  # may be mid-message: don't reuse

    def close(self) -> None:
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        self.plumber.close()

    # --- host set-up ----------------------------------------------------
    def links_by_mac(self) -> dict[str, tuple[str, int, int, bool]]:
        """mac -> (ifname, index, mtu, up)."""
        out: dict[str, tuple[str, int, int, bool]] = {}
        with self.host() as ipr:
            for link in ipr.get_links():
                mac = _attr(link, "IFLA_ADDRESS")
                if mac:
                    out[mac.lower()] = (
                        _attr(link, "IFLA_IFNAME"),
                        link["index"],
                        _attr(link, "IFLA_MTU"),
                        bool(link["flags"] & IFF_UP),
                    )
        return out

    def ensure_eni(
        self, eni: EniInfo, links: dict[str, tuple[str, int, int, bool]]
    ) -> tuple[EniLink | None, list[str]]:
        """ENI link up with its MTU, rp_filter 0, and its table holding the
        gateway (scope link) and the default route through it."""
        found = links.get(eni.mac.lower())
        if found is None:
            return None, [f"eni {eni.eni_id}: no link with mac {eni.mac}"]
        ifname, index, mtu, up = found
        drift: list[str] = []
        table = index + TABLE_OFFSET
        with self.host() as ipr:
            if mtu != self.mtu or not up:
                ipr.link("set", index=index, state="up", mtu=self.mtu)
                drift.append(f"eni {ifname}: up={up} mtu={mtu} (want up, mtu {self.mtu})")
            routes = ipr.get_routes(family=socket.AF_INET, table=table)
            have = {
                (r["dst_len"], _attr(r, "RTA_DST"), _attr(r, "RTA_GATEWAY"), _attr(r, "RTA_OIF"))
                for r in routes
                if _route_table(r) == table
            }
            if (32, eni.gateway, None, index) not in have:
                ipr.route(
                    "replace", dst=eni.gateway, dst_len=32, oif=index, scope=SCOPE_LINK, table=table
                )
                drift.append(f"eni {ifname}: table {table} lacked the gateway route")
            if (0, None, eni.gateway, index) not in have:
                ipr.route(
                    "replace", dst="0.0.0.0", dst_len=0, gateway=eni.gateway, oif=index, table=table
                )
                drift.append(f"eni {ifname}: table {table} lacked the default route")
        drift += ensure_sysctl(f"conf/{ifname}/rp_filter", "0")
        return EniLink(eni.eni_id, ifname, index, table), drift

    def rules(self) -> set[tuple[int, str, str, int]]:
        """Our-priority rules as (priority, 'to'|'from', ip, table)."""
        out: set[tuple[int, str, str, int]] = set()
        with self.host() as ipr:
            for r in ipr.get_rules(family=socket.AF_INET):
                prio = _attr(r, "FRA_PRIORITY")
                if prio not in (PRIO_TO_POD, PRIO_FROM_POD):
                    continue
                table = _attr(r, "FRA_TABLE") or r["table"]
                if r["dst_len"] == 32 and _attr(r, "FRA_DST"):
                    out.add((prio, "to", _attr(r, "FRA_DST"), table))
                if r["src_len"] == 32 and _attr(r, "FRA_SRC"):
                    out.add((prio, "from", _attr(r, "FRA_SRC"), table))
        return out

    def host_veths(self, prefix: str) -> dict[str, int]:
        """Our host-side veths: kind veth, named ``prefix`` + hex hash (see
        ``pool.host_veth_name``), so another tool's ``tke...`` link is never ours."""
        return {name: index for name, (index, _up) in self.host_veth_links(prefix).items()}

    def host_veth_links(self, prefix: str) -> dict[str, tuple[int, bool]]:
        """``host_veths`` with each link's state: name -> (index, up)."""
        hex_len = 15 - len(prefix)
        out: dict[str, tuple[int, bool]] = {}
        with self.host() as ipr:
            for link in ipr.get_links():
                name = _attr(link, "IFLA_IFNAME") or ""
                rest = name[len(prefix) :]
                if not name.startswith(prefix) or len(rest) != hex_len:
                    continue
                if any(c not in "0123456789abcdef" for c in rest):
                    continue
                info = _attr(link, "IFLA_LINKINFO")
                if info is not None and info.get_attr("IFLA_INFO_KIND") == "veth":
                    out[name] = (link["index"], bool(link["flags"] & IFF_UP))
        return out

    def host_veth_macs(self, prefix: str) -> dict[str, tuple[int, str, int]]:
        """Our host-side veths (as ``host_veths``): name -> (index, MAC, the
        peer's index in its netns)."""
        ours = self.host_veth_links(prefix)
        out: dict[str, tuple[int, str, int]] = {}
        with self.host() as ipr:
            for link in ipr.get_links():
                name = _attr(link, "IFLA_IFNAME") or ""
                if name in ours and link["index"] == ours[name][0]:
                    mac = str(_attr(link, "IFLA_ADDRESS") or "").lower()
                    out[name] = (link["index"], mac, int(_attr(link, "IFLA_LINK") or 0))
        return out

    def pod_ends(self) -> dict[tuple[int, int, str], tuple[str, str]]:
        """Every veth end in the named netns (``NETNS_DIRS``): (its peer's index,
        its own index, its MAC) -> (netns path, ifname). A host veth's pod end
        is the entry keyed (host index, the host veth's peer index, the MAC
        derived for the pod side): indexes of both ends and the MAC must
        agree. One pass over the netns (the rebuild looks many links up)."""
        out: dict[tuple[int, int, str], tuple[str, str]] = {}
        seen: set[str] = set()
        for directory in NETNS_DIRS:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                path = os.path.join(directory, name)
                real = os.path.realpath(path)
                if real in seen:
                    continue
                seen.add(real)
                try:
                    for key, ifname in self._veth_ends_in(path):
                        out.setdefault(key, (path, ifname))
                except (NetnsGoneError, NetlinkError, OSError):
                    continue  # gone meanwhile, or not a netns
        return out

    @staticmethod
    def _veth_ends_in(path: str) -> list[tuple[tuple[int, int, str], str]]:
        with in_netns(path):
            ipr = IPRoute()
            try:
                return [
                    (
                        (
                            int(peer),
                            int(link["index"]),
                            str(_attr(link, "IFLA_ADDRESS") or "").lower(),
                        ),
                        str(_attr(link, "IFLA_IFNAME") or ""),
                    )
                    for link in ipr.get_links()
                    if (peer := _attr(link, "IFLA_LINK"))
                ]
            finally:
                ipr.close()

    def host_routes32(self) -> set[tuple[str, int]]:
        """The main table's /32 routes as (destination, output link index)."""
        with self.host() as ipr:
            return {
                (_attr(r, "RTA_DST"), _attr(r, "RTA_OIF"))
                for r in ipr.get_routes(family=socket.AF_INET, table=TABLE_MAIN)
                if r["dst_len"] == 32 and _route_table(r) == TABLE_MAIN
            }

    def ensure_pod_host(
        self, alloc: Allocation, table: int, rules: set[tuple[int, str, str, int]]
    ) -> list[str]:
        """Host route and rules of a live pod (its host veth exists)."""
        drift: list[str] = []
        with self.host() as ipr:
            idx = ipr.link_lookup(ifname=alloc.host_veth)
            if not idx or not ipr.get_links(idx[0])[0]["flags"] & IFF_UP:
                return drift  # gone, or an ADD that stopped half-way: the retry rebuilds it
            routes = ipr.get_routes(
                family=socket.AF_INET, dst=alloc.ip, dst_len=32, table=TABLE_MAIN
            )
            if not any(_attr(r, "RTA_OIF") == idx[0] and r["dst_len"] == 32 for r in routes):
                ipr.route("replace", dst=alloc.ip, dst_len=32, oif=idx[0], scope=SCOPE_LINK)
                drift.append(f"pod {alloc.ip}: host route via {alloc.host_veth} missing")
            drift += self._ensure_rules(ipr, alloc.ip, table, rules)
        return drift

    def _ensure_rules(
        self, ipr: Any, ip: str, table: int, rules: set[tuple[int, str, str, int]] | None
    ) -> list[str]:
        drift: list[str] = []
        to_missing = rules is None or (PRIO_TO_POD, "to", ip, TABLE_MAIN) not in rules
        if to_missing and _add_rule(
            ipr, priority=PRIO_TO_POD, dst=ip, dst_len=32, table=TABLE_MAIN
        ):
            drift.append(f"rule to {ip} lookup main missing")
        from_missing = rules is None or (PRIO_FROM_POD, "from", ip, table) not in rules
        if from_missing and _add_rule(ipr, priority=PRIO_FROM_POD, src=ip, src_len=32, table=table):
            drift.append(f"rule from {ip} lookup {table} missing")
        return drift

    def delete_rule(self, prio: int, direction: str, ip: str, table: int) -> None:
        with self.host() as ipr:
            key = "dst" if direction == "to" else "src"
            kwargs = {key: ip, f"{key}_len": 32}
            with suppress(NetlinkError):
                ipr.rule("del", priority=prio, table=table, **kwargs)

    def delete_link(self, name: str) -> bool:
        with self.host() as ipr:
            idx = ipr.link_lookup(ifname=name)
            if not idx:
                return False
            try:
                ipr.link("del", index=idx[0])
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise
            return True

    # --- pod ------------------------------------------------------------
    def add_pod(self, alloc: Allocation, table: int) -> PodAttachment:
        return self.plumber.add_pod(alloc, table)

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        self.plumber.del_pod(ip, host_veth, delete_link)

    def check_pod(self, alloc: Allocation, table: int) -> None:
        """CniError(100) naming the first thing that differs."""

        def fail(what: str) -> CniError:
            return CniError(ERR_CHECK_FAILED, f"pod {alloc.ip}: {what}")

        with self.host() as ipr:
            idx = ipr.link_lookup(ifname=alloc.host_veth)
            if not idx:
                raise fail(f"host veth {alloc.host_veth} is missing")
            link = ipr.get_links(idx[0])[0]
            if not link["flags"] & IFF_UP:
                raise fail(f"host veth {alloc.host_veth} is down")
            host_mac = _attr(link, "IFLA_ADDRESS")
            routes = ipr.get_routes(
                family=socket.AF_INET, dst=alloc.ip, dst_len=32, table=TABLE_MAIN
            )
            if not any(_attr(r, "RTA_OIF") == idx[0] for r in routes):
                raise fail(f"host route {alloc.ip}/32 dev {alloc.host_veth} is missing")
        rules = self.rules()
        if (PRIO_TO_POD, "to", alloc.ip, TABLE_MAIN) not in rules:
            raise fail(f"rule 'to {alloc.ip} lookup main' (priority {PRIO_TO_POD}) is missing")
        if (PRIO_FROM_POD, "from", alloc.ip, table) not in rules:
            raise fail(
                f"rule 'from {alloc.ip} lookup {table}' (priority {PRIO_FROM_POD}) is missing"
            )
        try:
            with in_netns(alloc.netns):
                pipr = IPRoute()
                try:
                    self._check_pod_side(pipr, alloc, host_mac, fail)
                finally:
                    pipr.close()
        except NetnsGoneError as exc:
            raise fail(str(exc)) from exc

    def _check_pod_side(
        self, pipr: Any, alloc: Allocation, host_mac: str, fail: Callable[[str], CniError]
    ) -> None:
        idx = pipr.link_lookup(ifname=alloc.ifname)
        if not idx:
            raise fail(f"{alloc.ifname} is missing in {alloc.netns}")
        addrs = {(_attr(a, "IFA_ADDRESS"), a["prefixlen"]) for a in pipr.get_addr(index=idx[0])}
        if (alloc.ip, 32) not in addrs:
            raise fail(f"{alloc.ifname} lacks {alloc.ip}/32 (has {sorted(addrs)})")
        routes = pipr.get_routes(family=socket.AF_INET)
        if not any(r["dst_len"] == 0 and _attr(r, "RTA_GATEWAY") == GATEWAY for r in routes):
            raise fail(f"default route via {GATEWAY} is missing in the pod")
        neigh = [n for n in pipr.get_neighbours(ifindex=idx[0]) if _attr(n, "NDA_DST") == GATEWAY]
        if (
            not neigh
            or not neigh[0]["state"] & NUD_PERMANENT
            or _attr(neigh[0], "NDA_LLADDR") != host_mac
        ):
            raise fail(f"permanent neighbour {GATEWAY} -> {host_mac} is missing in the pod")


def pod_host_looks_right(
    alloc: Allocation,
    table: int,
    rules: set[tuple[int, str, str, int]],
    links: dict[str, tuple[int, bool]],
    routes: set[tuple[str, int]],
) -> bool:
    """What ``NetOps.ensure_pod_host`` checks, against one pass's dumps (no
    netlink call per pod: a pass over 30 pods cost ~70 ms of CPU under the
    GIL that way). True when there is nothing to do — including a link that
    is gone or down, which ``ensure_pod_host`` leaves alone too."""
    found = links.get(alloc.host_veth)
    if found is None or not found[1]:
        return True
    return (
        (alloc.ip, found[0]) in routes
        and (PRIO_TO_POD, "to", alloc.ip, TABLE_MAIN) in rules
        and (PRIO_FROM_POD, "from", alloc.ip, table) in rules
    )


def _route_table(r: Any) -> int:
    return int(_attr(r, "RTA_TABLE") or r["table"])


def _add_rule(ipr: Any, **kwargs: Any) -> bool:
    """True when the rule was added, False when it already existed."""
    try:
        ipr.rule("add", **kwargs)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return False
        raise
    return True
