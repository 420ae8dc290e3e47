"""A minimal rtnetlink client for the CNI hot path (ADD/DEL): a handful of
fixed requests packed with ``struct`` on a plain netlink socket.

Why not pyroute2 here: each pyroute2 call runs an asyncio loop and decodes
every reply generically (~0.5-1 ms of CPU per call measured here); an ADD is
~10 calls, and a 30-pod burst serialises them under the GIL. These requests
cost microseconds. pyroute2 still does everything else (dumps, the
reconcile loop, CHECK), where its decoding is worth it.

Requests are acknowledged one by one; a kernel error becomes ``OSError``
with the errno and the request named."""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Final

NLMSG_ERROR: Final = 2
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLM_F_REPLACE: Final = 0x100
NLM_F_EXCL: Final = 0x200
NLM_F_CREATE: Final = 0x400

RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
RTM_NEWADDR: Final = 20
RTM_NEWROUTE: Final = 24
RTM_DELROUTE: Final = 25
RTM_NEWNEIGH: Final = 28
RTM_NEWRULE: Final = 32
RTM_DELRULE: Final = 33

IFF_UP: Final = 0x1
IFLA_ADDRESS: Final = 1
IFLA_IFNAME: Final = 3
IFLA_MTU: Final = 4
IFLA_LINKINFO: Final = 18
IFLA_NET_NS_FD: Final = 28
IFLA_INFO_KIND: Final = 1
IFLA_INFO_DATA: Final = 2
VETH_INFO_PEER: Final = 1
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
RTA_DST: Final = 1
RTA_OIF: Final = 4
RTA_GATEWAY: Final = 5
RTA_TABLE: Final = 15
NDA_DST: Final = 1
NDA_LLADDR: Final = 2
FRA_DST: Final = 1
FRA_SRC: Final = 2
FRA_PRIORITY: Final = 6
FRA_TABLE: Final = 15
FR_ACT_TO_TBL: Final = 1

RT_TABLE_MAIN: Final = 254
RTPROT_STATIC: Final = 4
RT_SCOPE_UNIVERSE: Final = 0
RT_SCOPE_LINK: Final = 253
RTN_UNICAST: Final = 1
NUD_PERMANENT: Final = 0x80

_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBi")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_U32 = struct.Struct("=I")


def _align(n: int) -> int:
    return (n + 3) & ~3


def nla(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (_align(length) - length)


def nla_u32(kind: int, value: int) -> bytes:
    return nla(kind, _U32.pack(value))


def nla_str(kind: int, value: str) -> bytes:
    return nla(kind, value.encode() + b"\0")


def ip4(addr: str) -> bytes:
    return socket.inet_aton(addr)


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


class Rtnl:
    """One NETLINK_ROUTE socket, bound to the netns of the thread that made it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg_type: int, flags: int, body: bytes, what: str) -> None:
        self.seq += 1
        seq = self.seq
        header = _HDR.pack(
            _HDR.size + len(body), msg_type, flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0
        )
        self.sock.sendto(header + body, (0, 0))
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, kind, _flags, rseq, _pid = _HDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR and rseq == seq:
                    (code,) = struct.unpack_from("=i", data, offset + _HDR.size)
                    if code == 0:
                        return
                    raise OSError(-code, f"{what}: {os.strerror(-code)}")
                offset += _align(length) if length else len(data)

    # --- requests of the pod plumbing ------------------------------------
    def add_veth(
        self, name: str, mac: str, *, peer: str, peer_mac: str, peer_netns_fd: int, mtu: int
    ) -> None:
        """The peer is created directly in the netns of ``peer_netns_fd``. Both
        ends start down (a veth cannot be opened before its peer is linked)."""
        peer_info = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + nla_str(IFLA_IFNAME, peer)
            + nla_u32(IFLA_MTU, mtu)
            + nla(IFLA_ADDRESS, mac_bytes(peer_mac))
            + nla_u32(IFLA_NET_NS_FD, peer_netns_fd)
        )
        linkinfo = nla(
            IFLA_LINKINFO,
            nla(IFLA_INFO_KIND, b"veth") + nla(IFLA_INFO_DATA, nla(VETH_INFO_PEER, peer_info)),
        )
        body = (
            _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            + nla_str(IFLA_IFNAME, name)
            + nla_u32(IFLA_MTU, mtu)
            + nla(IFLA_ADDRESS, mac_bytes(mac))
            + linkinfo
        )
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {name}/{peer}")

    def set_up(self, index: int, name: str) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        self.request(RTM_NEWLINK, 0, body, f"set {name} up")

    def del_link(self, index: int, name: str) -> None:
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0)
        self.request(RTM_DELLINK, 0, body, f"delete link {name}")

    def add_addr32(self, index: int, ip: str) -> None:
        body = (
            _IFADDR.pack(socket.AF_INET, 32, 0, RT_SCOPE_UNIVERSE, index)
            + nla(IFA_LOCAL, ip4(ip))
            + nla(IFA_ADDRESS, ip4(ip))
        )
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, body, f"add address {ip}/32")

    def _route(
        self, msg: int, flags: int, dst: str | None, dst_len: int, *, oif: int = 0,
        gateway: str | None = None, scope: int = RT_SCOPE_UNIVERSE, table: int = RT_TABLE_MAIN,
    ) -> None:  # fmt: skip
        body = _RTMSG.pack(
            socket.AF_INET,
            dst_len,
            0,
            0,
            table if table < 256 else 0,
            RTPROT_STATIC,
            scope,
            RTN_UNICAST,
            0,
        )
        if table >= 256:
            body += nla_u32(RTA_TABLE, table)
        if dst is not None:
            body += nla(RTA_DST, ip4(dst))
        if gateway is not None:
            body += nla(RTA_GATEWAY, ip4(gateway))
        if oif:
            body += nla_u32(RTA_OIF, oif)
        self.request(
            msg, flags, body, f"route {dst}/{dst_len} via {gateway} oif {oif} table {table}"
        )

    def replace_route(self, dst: str | None, dst_len: int, **kw: int | str | None) -> None:
        self._route(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, dst, dst_len, **kw)  # type: ignore[arg-type]

    def del_route(self, dst: str, dst_len: int, table: int = RT_TABLE_MAIN) -> bool:
        try:
            self._route(RTM_DELROUTE, 0, dst, dst_len, table=table, scope=0)
        except OSError as exc:
            if exc.errno in (errno.ESRCH, errno.ENOENT):
                return False
            raise
        return True

    def replace_neigh(self, index: int, ip: str, mac: str) -> None:
        body = (
            _NDMSG.pack(socket.AF_INET, index, NUD_PERMANENT, 0, 0)
            + nla(NDA_DST, ip4(ip))
            + nla(NDA_LLADDR, mac_bytes(mac))
        )
        self.request(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body, f"neighbour {ip} -> {mac}")

    def _rule(
        self, msg: int, flags: int, priority: int, *, src: str | None, dst: str | None, table: int
    ) -> None:
        hdr = _RTMSG.pack(
            socket.AF_INET, 32 if dst else 0, 32 if src else 0, 0,
            table if 0 < table < 256 else 0, 0, 0, FR_ACT_TO_TBL if msg == RTM_NEWRULE else 0, 0,
        )  # fmt: skip
        body = hdr + nla_u32(FRA_PRIORITY, priority)
        if table:
            body += nla_u32(FRA_TABLE, table)
        if dst:
            body += nla(FRA_DST, ip4(dst))
        if src:
            body += nla(FRA_SRC, ip4(src))
        self.request(msg, flags, body, f"rule prio {priority} from {src} to {dst} table {table}")

    def add_rule(
        self, priority: int, *, src: str | None = None, dst: str | None = None, table: int
    ) -> bool:
        """False when the same rule already exists."""
        try:
            self._rule(
                RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, priority, src=src, dst=dst, table=table
            )
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            raise
        return True

    def del_rule(
        self, priority: int, *, src: str | None = None, dst: str | None = None, table: int = 0
    ) -> bool:
        """Table 0 matches any table. False when there was no such rule."""
        try:
            self._rule(RTM_DELRULE, 0, priority, src=src, dst=dst, table=table)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return False
            raise
        return True
