"""The cloud side of the local run's VPC fabric: what a managed cluster's nodes reach
through their VPC besides each other.

- **the VPC router**: the fabric's bridge holds each node subnet's gateway (the first
  address of the subnet); a node's default route points at it;
- **the control plane's network** (``<prefix>-cp``, a namespace of its own on the
  bridge, ``CP_ADDRESS``): the apiserver's VPC endpoint (a forwarder to the apiserver's
  loopback listener, as a managed cluster puts a load balancer in front of it; the
  ``kubernetes`` Service's endpoint), kube-scheduler and a kube-proxy (it reaches the
  scheduler extender's Service), and the apiserver's egress proxy (``kubectl logs/exec``,
  webhooks);
- **the cloud's own services** at ``CLOUD_SERVICES_ADDRESS`` on the fabric (the emulator's
  VPC-side listener): the API endpoint and the instance metadata service, which knows
  each instance by the address it calls from.

Nothing here touches the host's network namespace: the host reaches the control plane on
loopback as before, and several local runs can share one machine."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from localnode import netns
from localnode.proc import Daemon, run

#: the VPC-side address of the control plane (a /24 of the VPC no subnet uses)
CP_SUBNET = "10.0.0.0/24"
CP_ADDRESS = "10.0.0.10"
#: the cloud's services inside the VPC (Tencent Cloud's metadata address)
CLOUD_SERVICES_ADDRESS = "169.254.0.23"
CLOUD_SERVICES_PORT = 80
BRIDGE = "vpc0"


def gateway_of(cidr: str) -> str:
    return str(ipaddress.ip_network(cidr).network_address + 1)


@dataclass
class CloudNetwork:
    prefix: str
    node_subnet_cidrs: Iterable[str]

    @property
    def fabric(self) -> str:
        return f"{self.prefix}-fabric"

    @property
    def cp_netns(self) -> str:
        return f"{self.prefix}-cp"

    @property
    def cp_netns_path(self) -> str:
        return str(netns.netns_path(self.cp_netns))

    @property
    def fabric_path(self) -> str:
        return str(netns.netns_path(self.fabric))

    def up(self) -> None:
        """The fabric with its gateways and the cloud services' address, and the control
        plane's namespace on it (idempotent)."""
        netns.ensure_fabric(self.fabric, BRIDGE)
        for key in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
            run(["sysctl", "-qw", f"net.ipv4.{key}"], netns=self.fabric)
        have = netns.ip(self.fabric, "-o", "addr", "show", "dev", BRIDGE)
        for cidr in (CP_SUBNET, *self.node_subnet_cidrs):
            net = ipaddress.ip_network(cidr)
            gw = f"{gateway_of(cidr)}/{net.prefixlen}"
            if f" {gw} " not in have:
                netns.ip(self.fabric, "addr", "add", gw, "dev", BRIDGE)
        if f" {CLOUD_SERVICES_ADDRESS}/32 " not in have:
            netns.ip(self.fabric, "addr", "add", f"{CLOUD_SERVICES_ADDRESS}/32", "dev", BRIDGE)
        netns.create(self.cp_netns)
        if "eth0" not in netns.ip(self.cp_netns, "-o", "link", "show"):
            prefixlen = ipaddress.ip_network(CP_SUBNET).prefixlen
            netns.attach(self.cp_netns, self.fabric, port=f"c-{self.prefix}"[:15],
                         address_cidr=f"{CP_ADDRESS}/{prefixlen}", bridge=BRIDGE,
                         gateway=gateway_of(CP_SUBNET))

    def apiserver_endpoint(self, apiserver_port: int, log_dir: str) -> Daemon:
        """The apiserver's VPC endpoint (``CP_ADDRESS:<port>``, the ``kubernetes`` Service's
        endpoint) and its loopback inside the control plane's namespace (kube-scheduler's
        and kube-proxy's kubeconfig), both forwarded to the host's loopback listener."""
        from pathlib import Path

        fwd = [f"{a}:{apiserver_port}=127.0.0.1:{apiserver_port}"
               for a in (CP_ADDRESS, "127.0.0.1")]
        return Daemon(f"apiserver-endpoint[{self.prefix}]",
                      [sys.executable, "-m", "localnode.portforward", "--netns",
                       self.cp_netns_path, *(x for f in fwd for x in ("--forward", f))],
                      log=Path(log_dir) / "apiserver-endpoint.log")

    def down(self) -> None:
        netns.delete(self.cp_netns)
        netns.delete(self.fabric)
