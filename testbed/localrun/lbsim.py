"""An L4 load balancer stand-in on the local run's VPC fabric (issue 17 item 2; docs/cni.md
"Load balancer straight to pods").

What a cloud L4 load balancer (CLB) does for a Service, made physical in two network
namespaces of the run:

- ``<prefix>-lb``: the load balancer. ``eth0`` ``LB_ADDRESS`` on the fabric's bridge (the
  control plane's /24, default route via the VPC router), and ``cl0`` ``VIP`` facing the
  clients' network ``CLIENT_CIDR``. The fabric (the VPC's route table) routes
  ``CLIENT_CIDR`` via ``LB_ADDRESS``, so replies from pods and nodes come back through the
  load balancer, as they do through a cloud LB.
- ``<prefix>-lbclient``: a client at ``CLIENT_ADDRESS`` (default route via ``VIP``).

The forwarding is the kernel's: one nftables table (``TABLE``) in the LB namespace, a
destination NAT per listener (``VIP:port``) choosing a backend per connection
(``numgen random``), no source NAT, so a backend sees the client's own address. Two modes:

- **direct** (route-ENI: the LB straight to pods): the backends are the VPC IPs of a
  Service's pods, from its EndpointSlices, read with a list + watch (``SliceWatch``); only
  ready endpoints (``ready`` true or unset, not ``terminating``) get new connections;
- **NodePort** (what a bridge-mode cluster needs): the backends are given, the nodes'
  ``IP:nodePort``; each node's kube-proxy takes it from there.

Every change replaces the whole table in one ``nft -f`` transaction. Connections already
established keep their conntrack entry (the NAT binding), so a backend taken out gets no
new connection while the ones in flight finish on it: the drain. The pod has to keep
serving until the LB has seen its endpoint go (a ``preStop`` delay), as behind any LB.

Why not HAProxy or IPVS: this kernel has no IPVS (``CONFIG_IP_VS`` unset), and HAProxy in
TCP mode terminates the connection, so every backend would see HAProxy's address on both
paths (the question "does the client address reach the pod" would be answered by the
stand-in, not by the network), and it would spend user-space CPU that the paths measured
share on a small machine. A stateful kernel NAT is what an L4 cloud LB is to its backends.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from localnode import netns
from localnode.proc import ProcessError, ns_argv
from localrun.cloudnet import BRIDGE, CP_SUBNET, gateway_of
from localrun.kube import Kube, wait_for

log = logging.getLogger("localrun.lbsim")

#: the LB on the fabric (a free address of the control plane's /24)
LB_ADDRESS = "10.0.0.30"
#: the clients' network behind the LB (RFC 2544's benchmarking range: no VPC subnet)
CLIENT_CIDR = "198.18.0.0/24"
VIP = "198.18.0.1"  # the LB's address on the clients' side: every listener
CLIENT_ADDRESS = "198.18.0.10"
TABLE = "tke_lbsim"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class LbError(RuntimeError):
    """The LB could not be set up or updated; the message names the step."""


@dataclass(frozen=True, order=True)
class Backend:
    address: str
    port: int

    def __post_init__(self) -> None:
        ipaddress.IPv4Address(self.address)  # ValueError names a bad address
        if not 0 < self.port < 65536:
            raise ValueError(f"backend {self.address}: port {self.port} out of range")

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


# ---- pure -------------------------------------------------------------------------------
def endpoint_ready(endpoint: Mapping[str, Any]) -> bool:
    """A new connection may go to this endpoint: ``ready`` true or unset (the API says to
    read unset as ready) and not terminating."""
    cond = endpoint.get("conditions") or {}
    return cond.get("ready", True) is not False and cond.get("terminating") is not True


def slice_port(slice_: Mapping[str, Any], port_name: str) -> int | None:
    """The target port of ``port_name`` (``""``: the only or first TCP port) in a slice."""
    ports = [p for p in slice_.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
    for p in ports:
        if (p.get("name") or "") == port_name and p.get("port"):
            return int(p["port"])
    if not port_name and ports and ports[0].get("port"):
        return int(ports[0]["port"])
    return None


def ready_backends(slices: Iterable[Mapping[str, Any]], port_name: str = "") -> tuple[Backend, ...]:
    """The ready IPv4 endpoints of a Service's EndpointSlices as backends, sorted, unique."""
    out: set[Backend] = set()
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        port = slice_port(s, port_name)
        if port is None:
            continue
        for ep in s.get("endpoints") or []:
            if endpoint_ready(ep):
                out.update(Backend(a, port) for a in ep.get("addresses") or [])
    return tuple(sorted(out))


def _chain(port: int, index: int) -> str:
    return f"be_{port}_{index}"


def render(vip: str, listeners: Mapping[int, Sequence[Backend]]) -> str:
    """The nft script replacing ``TABLE`` (in one transaction) with a destination NAT per
    listener port of ``vip``; a listener without backends gets no rule (the LB's own
    stack refuses the connection). Pure."""
    ipaddress.IPv4Address(vip)
    lines = [f"table ip {TABLE}", f"delete table ip {TABLE}", f"table ip {TABLE} {{"]
    rules = []
    for port in sorted(listeners):
        if not 0 < port < 65536:
            raise ValueError(f"listener port {port} out of range")
        backends = sorted(set(listeners[port]))
        for i, b in enumerate(backends):
            lines += [f"\tchain {_chain(port, i)} {{",
                      f"\t\tmeta l4proto tcp dnat to {b.address}:{b.port}", "\t}"]
        if backends:
            arms = ", ".join(f"{i} : goto {_chain(port, i)}" for i in range(len(backends)))
            rules.append(f"\t\tip daddr {vip} tcp dport {port} numgen random mod "
                         f"{len(backends)} vmap {{ {arms} }}")
    lines += ["\tchain prerouting {",
              "\t\ttype nat hook prerouting priority dstnat; policy accept;",
              *rules, "\t}", "}"]
    return "\n".join(lines) + "\n"


# ---- the EndpointSlice watch ------------------------------------------------------------
@dataclass
class SliceWatch:
    """List + watch of one Service's EndpointSlices through the admin kubeconfig; calls
    ``on_change`` with every slice after the list and after each event (relists after a
    watch ends or fails)."""

    kube: Kube
    namespace: str
    service: str
    on_change: Callable[[list[dict[str, Any]]], None]
    errors: int = 0
    last_error: str = ""
    events: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _conn: http.client.HTTPSConnection | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    @property
    def _path(self) -> str:
        sel = quote(f"{SERVICE_NAME_LABEL}={self.service}")
        return (f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
                f"?labelSelector={sel}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lbsim-watch-{self.service}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._conn is not None and self._conn.sock is not None:
                with contextlib.suppress(OSError):  # the blocked read returns at once
                    self._conn.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listing = self.kube.get(self._path) or {}
                slices = {s["metadata"]["name"]: s for s in listing.get("items") or []}
                self.on_change(list(slices.values()))
                self._stream(str((listing.get("metadata") or {}).get("resourceVersion", "")),
                             slices)
            except Exception as exc:  # noqa: BLE001 - the watch outlives a bad pass
                if self._stop.is_set():
                    break
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("EndpointSlice watch of %s/%s: %s", self.namespace, self.service,
                            self.last_error)
                self._stop.wait(1.0)

    def _connection(self) -> http.client.HTTPSConnection:
        cfg = yaml.safe_load(Path(self.kube.kubeconfig).read_text())
        user = cfg["users"][0]["user"]
        ctx = ssl.create_default_context(
            cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])
        ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        url = urlsplit(self.kube.server)
        return http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port or 443,
                                           context=ctx, timeout=None)

    def _stream(self, rv: str, slices: dict[str, dict[str, Any]]) -> None:
        conn = self._connection()
        with self._lock:
            if self._stop.is_set():
                return
            self._conn = conn
        try:
            conn.request("GET", f"{self._path}&watch=1&allowWatchBookmarks=true"
                                f"&resourceVersion={quote(rv)}")
            resp = conn.getresponse()
            if resp.status != 200:
                raise LbError(f"watch {self._path}: HTTP {resp.status}: {resp.read(300)!r}")
            while not self._stop.is_set():
                line = resp.readline()
                if not line:
                    return  # the server ended the watch: relist
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # e.g. 410 Gone: relist
                if kind == "BOOKMARK":
                    continue
                name = obj["metadata"]["name"]
                if kind == "DELETED":
                    slices.pop(name, None)
                else:
                    slices[name] = obj
                self.events += 1
                self.on_change(list(slices.values()))
        finally:
            with self._lock:
                self._conn = None
            conn.close()


# ---- the load balancer ------------------------------------------------------------------
@dataclass
class LoadBalancer:
    """The LB and client namespaces on ``fabric``; ``up()`` then listeners, ``down()``."""

    prefix: str
    fabric: str
    #: port -> backends, applied; and every applied change (monotonic time, port, backends)
    listeners: dict[int, tuple[Backend, ...]] = field(default_factory=dict)
    history: list[tuple[float, int, tuple[Backend, ...]]] = field(default_factory=list)
    apply_errors: list[str] = field(default_factory=list)
    _watches: list[SliceWatch] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def netns(self) -> str:
        return f"{self.prefix}-lb"

    @property
    def client_netns(self) -> str:
        return f"{self.prefix}-lbclient"

    def client_argv(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run in the client's network namespace (nsenter, as the node tools)."""
        return ns_argv(cmd, netns=self.client_netns)

    def probe(self, port: int, count: int = 10) -> dict[str, Any]:
        """``count`` requests from the client through listener ``port`` (one at a time,
        ``localrun.lbclient``); its summary: ok, failed, peers and pods seen, ..."""
        argv = self.client_argv([sys.executable, "-m", "localrun.lbclient", "--host", VIP,
                                 "--port", str(port), "--count", str(count), "--workers", "1"])
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith('{"requests"')]
        if done.returncode != 0 or not lines:
            raise LbError(f"lbclient in {self.client_netns} exited {done.returncode}: "
                          f"{done.stderr.strip()[-500:]}")
        return dict(json.loads(lines[-1]))

    def wait_answering(self, port: int, count: int = 3, timeout: float = 120.0) -> None:
        """Wait until ``count`` requests in a row through ``port`` succeed (a NodePort
        answers once every node's kube-proxy has programmed it)."""
        last: dict[str, Any] = {}

        def answers() -> bool:
            last.update(self.probe(port, count))
            return bool(last["ok"] == count)
        wait_for(f"{VIP}:{port} answering {count} requests in a row", answers, timeout,
                 interval=1.0, detail=lambda: str(last.get("failures")))

    def up(self) -> LoadBalancer:
        """Both namespaces, their links and routes, the fabric's route to the clients, and
        an empty table; on an error, whatever was made is removed."""
        try:
            self._up()
        except Exception:
            self.down()
            raise
        return self

    def _up(self) -> None:
        if not netns.exists(self.fabric):
            raise LbError(f"fabric namespace {self.fabric} does not exist (start the local "
                          "run first)")
        net = ipaddress.ip_network(CP_SUBNET)
        netns.create(self.netns)
        netns.create(self.client_netns)
        self._sysctl(self.netns, "ip_forward=1", "conf.all.rp_filter=0",
                     "conf.default.rp_filter=0")
        netns.attach(self.netns, self.fabric, port=f"lb-{self.prefix}"[:15],
                     address_cidr=f"{LB_ADDRESS}/{net.prefixlen}", bridge=BRIDGE,
                     gateway=gateway_of(CP_SUBNET))
        plen = ipaddress.ip_network(CLIENT_CIDR).prefixlen
        netns.ip(self.netns, "link", "add", "cl0", "type", "veth", "peer", "name", "eth0",
                 "netns", self.client_netns)
        netns.ip(self.netns, "addr", "add", f"{VIP}/{plen}", "dev", "cl0")
        netns.ip(self.netns, "link", "set", "cl0", "up")
        netns.ip(self.client_netns, "addr", "add", f"{CLIENT_ADDRESS}/{plen}", "dev", "eth0")
        netns.ip(self.client_netns, "link", "set", "eth0", "up")
        netns.ip(self.client_netns, "route", "replace", "default", "via", VIP)
        netns.ip(self.fabric, "route", "replace", CLIENT_CIDR, "via", LB_ADDRESS)
        self._apply()

    @staticmethod
    def _sysctl(ns: str, *keys: str) -> None:
        for key in keys:
            r = subprocess.run(ns_argv(["sysctl", "-qw", f"net.ipv4.{key}"], netns=ns),
                               capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise LbError(f"sysctl {key} in {ns}: {r.stderr.strip()}")

    def set_backends(self, port: int, backends: Iterable[Backend]) -> bool:
        """Set a listener's backends (NodePort mode, or the watch); True when changed."""
        want = tuple(sorted(set(backends)))
        with self._lock:
            if port in self.listeners and self.listeners[port] == want:
                return False
            before = self.listeners.get(port)
            self.listeners[port] = want
            try:
                self._apply()
            except Exception:
                if before is None:
                    self.listeners.pop(port, None)
                else:
                    self.listeners[port] = before
                raise
            self.history.append((time.monotonic(), port, want))
        log.info("listener %s:%d -> %s", VIP, port, ", ".join(map(str, want)) or "(none)")
        return True

    def watch_service(self, port: int, kube: Kube, namespace: str, service: str,
                      port_name: str = "") -> SliceWatch:
        """Direct mode: listener ``port`` follows the Service's ready endpoints."""
        def on_change(slices: list[dict[str, Any]]) -> None:
            try:
                self.set_backends(port, ready_backends(slices, port_name))
            except (LbError, ProcessError, ValueError) as exc:
                self.apply_errors.append(str(exc))
                log.warning("listener %d not updated: %s", port, exc)
                raise

        w = SliceWatch(kube, namespace, service, on_change)
        self._watches.append(w)
        w.start()
        return w

    def backends(self, port: int) -> tuple[Backend, ...]:
        with self._lock:
            return self.listeners.get(port, ())

    def _apply(self) -> None:
        script = render(VIP, self.listeners)
        r = subprocess.run(ns_argv(["nft", "-f", "-"], netns=self.netns), input=script,
                           capture_output=True, text=True, check=False, timeout=30)
        if r.returncode != 0:
            raise LbError(f"nft -f in {self.netns} exited {r.returncode}: "
                          f"{r.stderr.strip()}\n{script}")

    def ruleset(self) -> str:
        return subprocess.run(ns_argv(["nft", "list", "table", "ip", TABLE], netns=self.netns),
                              capture_output=True, text=True, check=False).stdout

    def down(self) -> list[str]:
        """Stop the watches, remove the fabric's route and both namespaces; what failed."""
        problems = []
        for w in self._watches:
            w.stop()
        self._watches.clear()
        if netns.exists(self.fabric):
            with contextlib.suppress(ProcessError):  # not added (or already gone)
                netns.ip(self.fabric, "route", "del", CLIENT_CIDR, "via", LB_ADDRESS)
        for ns in (self.client_netns, self.netns):
            try:
                netns.delete(ns)
            except ProcessError as exc:
                problems.append(f"netns {ns}: {exc}")
        return problems


__all__ = ["CLIENT_ADDRESS", "CLIENT_CIDR", "LB_ADDRESS", "VIP", "Backend", "LbError",
           "LoadBalancer", "SliceWatch", "ready_backends", "render"]
