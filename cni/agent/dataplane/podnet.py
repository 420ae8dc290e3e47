"""One pod's plumbing on the CNI hot path, with the raw rtnetlink client
(``rtnl``): the veth created with its peer directly in the pod netns, the
pod's /32 and link-local gateway with a permanent neighbour entry, the host
/32 route and the two ip rules; and its removal on DEL."""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..cnitypes import GATEWAY, PodAttachment
from ..pool import Allocation
from .nsutil import in_netns, open_netns
from .rtnl import RT_SCOPE_LINK, RT_TABLE_MAIN, Rtnl

PRIO_TO_POD = 512
PRIO_FROM_POD = 1536


def veth_mac(name: str, ip: str, side: str) -> str:
    """A stable, locally administered unicast MAC for one end of a pod veth:
    the result and the pod's neighbour entry are known without a lookup."""
    digest = hashlib.sha1(f"{side}/{name}/{ip}".encode(), usedforsecurity=False).digest()
    first = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


class PodPlumber:
    def __init__(self, mtu: int, fault: Callable[[str], None]) -> None:
        self.mtu = mtu
        self.fault = fault
        self._rtnl_pool: queue.SimpleQueue[Rtnl] = queue.SimpleQueue()

    def close(self) -> None:
        while True:
            try:
                self._rtnl_pool.get_nowait().close()
            except queue.Empty:
                return

    @contextmanager
    def rtnl(self) -> Iterator[Rtnl]:
        """A host-netns raw rtnetlink socket for this call (hot path)."""
        try:
            sock = self._rtnl_pool.get_nowait()
        except queue.Empty:
            sock = Rtnl()
        ok = False
        try:
            yield sock
            ok = True
        finally:
            if ok:
                self._rtnl_pool.put(sock)
            else:
                sock.close()

    def add_pod(self, alloc: Allocation, table: int) -> PodAttachment:
        """Plumb one pod; a stale host veth of the same name is removed first."""
        host_mac = veth_mac(alloc.host_veth, alloc.ip, "host")
        pod_mac = veth_mac(alloc.host_veth, alloc.ip, "pod")
        fd = open_netns(alloc.netns)
        try:
            with self.rtnl() as nl:
                try:
                    nl.add_veth(
                        alloc.host_veth,
                        host_mac,
                        peer=alloc.ifname,
                        peer_mac=pod_mac,
                        peer_netns_fd=fd,
                        mtu=self.mtu,
                    )
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        raise
                    try:
                        stale = socket.if_nametoindex(alloc.host_veth)
                    except OSError:
                        raise OSError(
                            errno.EEXIST, f"{alloc.ifname} already exists in {alloc.netns}"
                        ) from exc
                    nl.del_link(stale, alloc.host_veth)
                    nl.add_veth(
                        alloc.host_veth,
                        host_mac,
                        peer=alloc.ifname,
                        peer_mac=pod_mac,
                        peer_netns_fd=fd,
                        mtu=self.mtu,
                    )
                self.fault("after-veth")
                idx = socket.if_nametoindex(alloc.host_veth)
                nl.set_up(idx, alloc.host_veth)
        finally:
            os.close(fd)
        with in_netns(alloc.netns), Rtnl() as pnl:
            pidx = socket.if_nametoindex(alloc.ifname)
            pnl.add_addr32(pidx, alloc.ip)
            pnl.set_up(pidx, alloc.ifname)
            pnl.replace_route(GATEWAY, 32, oif=pidx, scope=RT_SCOPE_LINK)
            pnl.replace_route("0.0.0.0", 0, oif=pidx, gateway=GATEWAY)
            pnl.replace_neigh(pidx, GATEWAY, host_mac)
        self.fault("after-pod")
        with self.rtnl() as nl:
            nl.replace_route(alloc.ip, 32, oif=idx, scope=RT_SCOPE_LINK)
            self.fault("after-route")
            nl.add_rule(PRIO_TO_POD, dst=alloc.ip, table=RT_TABLE_MAIN)
            nl.add_rule(PRIO_FROM_POD, src=alloc.ip, table=table)
        self.fault("after-rules")
        return PodAttachment(
            ip=alloc.ip,
            host_veth=alloc.host_veth,
            host_mac=host_mac,
            ifname=alloc.ifname,
            pod_mac=pod_mac,
            netns=alloc.netns,
            mtu=self.mtu,
        )

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        """Rules and host route of ``ip``; the veth dies with the pod netns
        (deleting it costs ~15 ms), unless ``delete_link``."""
        with self.rtnl() as nl:
            while nl.del_rule(PRIO_TO_POD, dst=ip):
                pass
            while nl.del_rule(PRIO_FROM_POD, src=ip):
                pass
            nl.del_route(ip, 32)
            if delete_link:
                try:
                    nl.del_link(socket.if_nametoindex(host_veth), host_veth)
                except OSError as exc:
                    if exc.errno not in (errno.ENODEV, errno.ENXIO):
                        raise
