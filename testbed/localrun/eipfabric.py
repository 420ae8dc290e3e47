"""Elastic IPs made physical: an "internet" beside the VPC fabric, where a pod's EIP
answers.

- the **internet** is a network namespace ``<prefix>-inet`` (its host
  ``CLIENT_ADDRESS`` on ``eth0``, default route to the fabric) linked to the fabric
  by a veth pair (fabric side ``LINK``, the internet's gateway ``INTERNET_GATEWAY``);
  the fabric routes ``INTERNET_CIDR`` there and nothing else: only the EIPs' traffic
  crosses;
- per EIP the emulator shows bound (``BIND``, an ``address_ip`` and its
  ``private_ip``), the fabric DNATs what the internet sends to the EIP to the private
  IP (the client's address is kept: the pod sees who called), and SNATs what that
  private IP sends to the internet to the EIP; replies follow conntrack.

``render`` (pure) turns the emulator's state into one nftables table ``ip tke_eip``;
``EipFabric.apply`` creates the internet once and replaces the table atomically (one
``nft -f``) when the rendering changed; ``down`` removes both. Hooked into the ENI
plumber's pass (``localrun.plumber``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import subprocess
from collections.abc import Mapping
from typing import Any

from localnode import netns
from localnode.proc import ProcessError, ns_argv, run

log = logging.getLogger("localrun.eipfabric")

TABLE = "tke_eip"
LINK = "inet0"  # the fabric's side of the internet link
INTERNET_CIDR = "198.51.100.0/24"  # TEST-NET-2: the internet as the local run sees it
INTERNET_GATEWAY = "198.51.100.1"
CLIENT_ADDRESS = "198.51.100.10"  # the internet host that calls the pods' EIPs


def internet_netns(fabric: str) -> str:
    """``<prefix>-inet`` beside ``<prefix>-fabric``."""
    return fabric.removesuffix("-fabric") + "-inet"


def bound(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(public IP, private IP) of every bound EIP, sorted. Pure."""
    out = set()
    for e in (state.get("eips") or {}).get("addresses", []):
        if e.get("status") == "BIND" and e.get("private_ip") and e.get("address_ip"):
            out.add((str(e["address_ip"]), str(e["private_ip"])))
    return sorted(out)


def render(state: Mapping[str, Any]) -> str:
    """The nft script replacing table ``ip tke_eip``. Pure."""
    pairs = bound(state)
    pre = [f'    iifname "{LINK}" ip daddr {pub} dnat to {priv}' for pub, priv in pairs]
    post = [f'    oifname "{LINK}" ip saddr {priv} snat to {pub}' for pub, priv in pairs]
    return "\n".join(
        [
            f"table ip {TABLE}",
            f"delete table ip {TABLE}",
            f"table ip {TABLE} {{",
            "  chain pre {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            *pre,
            "  }",
            "  chain post {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            *post,
            "  }",
            "  chain forward_in {",
            "    type filter hook forward priority filter; policy accept;",
            f'    iifname "{LINK}" ct state established,related accept',
            f'    iifname "{LINK}" ct status dnat accept',
            f'    iifname "{LINK}" drop',
            "  }",
            "}",
            "",
        ]
    )


class EipFabric:
    def __init__(self, fabric: str) -> None:
        self.fabric = fabric
        self.inet = internet_netns(fabric)
        self._digest = ""
        self._up = False

    def up(self) -> None:
        """The internet namespace and its link to the fabric (idempotent)."""
        netns.create(self.inet)
        links = netns.ip(self.fabric, "-o", "link", "show")
        if f" {LINK}@" not in links and f" {LINK}:" not in links:
            with contextlib.suppress(ProcessError):  # a half-made link of an earlier try
                netns.ip(self.inet, "link", "del", "eth0")
            netns.ip(
                self.fabric,
                "link",
                "add",
                LINK,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.inet,
            )
            prefixlen = INTERNET_CIDR.split("/")[1]
            netns.ip(self.fabric, "addr", "add", f"{INTERNET_GATEWAY}/{prefixlen}", "dev", LINK)
            netns.ip(self.fabric, "link", "set", LINK, "up")
            netns.ip(self.inet, "addr", "add", f"{CLIENT_ADDRESS}/{prefixlen}", "dev", "eth0")
            netns.ip(self.inet, "link", "set", "eth0", "up")
            netns.ip(self.inet, "link", "set", "lo", "up")
            netns.ip(self.inet, "route", "replace", "default", "via", INTERNET_GATEWAY)
            for key in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
                run(["sysctl", "-qw", f"net.ipv4.{key}"], netns=self.fabric)
            self._digest = ""
        self._up = True

    def apply(self, state: Mapping[str, Any]) -> bool:
        """Bring the internet up once, then the table when its rendering changed."""
        if not self._up:
            self.up()
        script = render(state)
        digest = hashlib.sha256(script.encode()).hexdigest()
        if digest == self._digest:
            return False
        argv = ns_argv(["nft", "-f", "-"], netns=self.fabric)
        r = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise ProcessError(f"nft -f in {self.fabric} exited {r.returncode}: {r.stderr.strip()}")
        self._digest = digest
        log.info("EIP fabric: %d EIP(s) bound", len(bound(state)))
        return True

    def down(self) -> None:
        """Remove the internet (its link goes with it) and the table."""
        if netns.exists(self.fabric):
            with contextlib.suppress(ProcessError):  # not there
                run(["nft", "delete", "table", "ip", TABLE], netns=self.fabric)
        netns.delete(self.inet)
        self._up = False
        self._digest = ""
