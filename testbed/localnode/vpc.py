"""Emulated ENIs for a local node: a veth per ENI between the node's netns and the fabric
namespace, which routes each of the ENI's IPs back to it (as the VPC's SDN would).

The node agent finds an ENI by MAC and brings the link up; the links are left down here.
``ip_source()`` renders the ``--ip-source=file`` document the agent reads (docs/cni.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from localnode.netns import ip
from localnode.proc import run


@dataclass(frozen=True)
class Eni:
    eni_id: str
    ifname: str  # in the node netns, e.g. eth1
    mac: str
    vpc_if: str  # its peer in the fabric netns
    subnet_cidr: str
    gateway: str
    ips: Sequence[str]  # ips[0] is the ENI's primary IP, the rest are for pods


@dataclass
class NodeEnis:
    enis: list[Eni] = field(default_factory=list)

    def ip_source(self) -> dict[str, Any]:
        return {
            "enis": [{"id": e.eni_id, "mac": e.mac, "subnetCidr": e.subnet_cidr,
                      "gateway": e.gateway, "primaryIp": e.ips[0]} for e in self.enis],
            "ips": [{"ip": addr, "eni": e.eni_id} for e in self.enis for addr in e.ips[1:]],
        }


def add_eni(fabric: str, node_netns: str, eni: Eni) -> None:
    """Plug ``eni`` into the node and route its IPs to it inside the fabric."""
    for key in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
        run(["sysctl", "-qw", f"net.ipv4.{key}"], netns=fabric)
    ip(fabric, "link", "add", eni.vpc_if, "type", "veth", "peer", "name", eni.ifname,
       "netns", node_netns)
    ip(node_netns, "link", "set", eni.ifname, "address", eni.mac)
    ip(fabric, "addr", "add", f"{eni.gateway}/32", "dev", eni.vpc_if)
    ip(fabric, "link", "set", eni.vpc_if, "up")
    for addr in eni.ips[1:]:
        ip(fabric, "route", "replace", f"{addr}/32", "dev", eni.vpc_if)
        ip(fabric, "neigh", "replace", addr, "lladdr", eni.mac, "dev", eni.vpc_if,
           "nud", "permanent")
