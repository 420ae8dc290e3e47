"""Real network namespaces for the CNI tests: a "VPC" namespace that routes
the subnet, nodes (namespaces) whose ENIs are veths into it, pods
(namespaces), and tke-eni-agent processes running inside a node. Everything
created here is removed by the fixtures' finalizers, also on failure.

Topology (subnet 10.10.0.0/24, gateway 10.10.0.1 on every VPC-side link)::

    pod ns --veth-- node ns [eth0: node IP/32, ethK: ENI] --veth-- vpc ns
                                                         (routes /32 + permanent neighbours)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
DEBIAN_CNI = "/usr/lib/cni"
SUBNET = "10.10.0.0/24"
GATEWAY = "10.10.0.1"
_counter = itertools.count()


def sh(*cmd: str, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def require_peers() -> None:
    """Fail (never skip) naming the set-up step when a peer is missing."""
    if os.geteuid() != 0:
        pytest.fail("CNI tests need root (real network namespaces): run them as root, as CI does")
    for tool in ("ptp", "host-local", "portmap", "bridge", "bandwidth"):
        if not os.access(f"{DEBIAN_CNI}/{tool}", os.X_OK):
            pytest.fail(
                f"{DEBIAN_CNI}/{tool} missing: run hack/setup.sh "
                "(step: Debian packages, containernetworking-plugins)"
            )
    for tool in ("/usr/bin/ping", "/usr/sbin/ip"):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} missing: run hack/setup.sh (step: Debian packages)")


class NetnsSet:
    """Namespaces with unique names; ``close`` deletes them all."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.tag = f"tk{os.getpid() % 10000}x{next(_counter)}"

    def add(self, role: str) -> str:
        name = f"{self.tag}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def close(self) -> None:
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)
        self.names.clear()


@pytest.fixture
def netns_set() -> Iterator[NetnsSet]:
    require_peers()
    nss = NetnsSet()
    try:
        yield nss
    finally:
        nss.close()


@dataclass
class Eni:
    eni_id: str
    ifname: str  # in the node ns
    mac: str
    vpc_if: str  # its peer in the VPC ns
    ips: list[str]


@dataclass
class Node:
    name: str
    ns: str
    ip: str
    vpc_if: str
    enis: list[Eni] = field(default_factory=list)

    def ip_source(self) -> dict[str, Any]:
        return {
            "enis": [
                {
                    "id": e.eni_id,
                    "mac": e.mac,
                    "subnetCidr": SUBNET,
                    "gateway": GATEWAY,
                    "primaryIp": e.ips[0],
                }
                for e in self.enis
            ],
            "ips": [{"ip": ip, "eni": e.eni_id} for e in self.enis for ip in e.ips[1:]],
        }


class Vpc:
    """The VPC namespace plus its nodes; pod IPs are routed to the ENI they
    belong to (a /32 route and a permanent neighbour entry, as an SDN would)."""

    def __init__(self, nss: NetnsSet) -> None:
        self.nss = nss
        self.ns = nss.add("vpc")
        for key in ("ip_forward=1", "conf.all.rp_filter=0", "conf.default.rp_filter=0"):
            sh("sysctl", "-qw", f"net.ipv4.{key}", ns=self.ns)
        self.nodes: list[Node] = []

    def _link(self, node_ns: str, node_if: str, vpc_if: str, mac: str | None) -> None:
        sh(
            "ip",
            "link",
            "add",
            vpc_if,
            "netns",
            self.ns,
            "type",
            "veth",
            "peer",
            "name",
            node_if,
            "netns",
            node_ns,
        )
        if mac:
            sh("ip", "link", "set", node_if, "address", mac, ns=node_ns)
        sh("ip", "addr", "add", f"{GATEWAY}/32", "dev", vpc_if, ns=self.ns)
        sh("ip", "link", "set", vpc_if, "up", ns=self.ns)
        sh("sysctl", "-qw", f"net.ipv6.conf.{vpc_if}.disable_ipv6=1", ns=self.ns)

    def add_node(self, index: int, eni_ips: list[list[str]]) -> Node:
        ns = self.nss.add(f"n{index}")
        node_ip = f"10.10.0.{10 + index}"
        vpc_if = f"v{index}e0"
        self._link(ns, "eth0", vpc_if, None)
        sh("ip", "addr", "add", f"{node_ip}/32", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)
        sh("ip", "route", "add", GATEWAY, "dev", "eth0", "scope", "link", ns=ns)
        sh("ip", "route", "add", "default", "via", GATEWAY, "dev", "eth0", ns=ns)
        sh("ip", "route", "add", f"{node_ip}/32", "dev", vpc_if, ns=self.ns)
        node = Node(f"node-{index}", ns, node_ip, vpc_if)
        for k, ips in enumerate(eni_ips, start=1):
            mac = f"02:00:00:00:{index:02x}:{k:02x}"
            eni = Eni(f"eni-{index:02d}{k:02d}", f"eth{k}", mac, f"v{index}e{k}", ips)
            self._link(ns, eni.ifname, eni.vpc_if, mac)  # left down: the agent brings it up
            for ip in ips[1:]:
                sh("ip", "route", "add", f"{ip}/32", "dev", eni.vpc_if, ns=self.ns)
                sh(
                    "ip",
                    "neigh",
                    "replace",
                    ip,
                    "lladdr",
                    mac,
                    "dev",
                    eni.vpc_if,
                    "nud",
                    "permanent",
                    ns=self.ns,
                )
            node.enis.append(eni)
        self.nodes.append(node)
        return node

    def counters(self, vpc_if: str) -> int:
        """Packets the VPC received from the node on this link."""
        out = sh("cat", f"/sys/class/net/{vpc_if}/statistics/rx_packets", ns=self.ns).stdout
        return int(out.strip())


@pytest.fixture
def vpc(netns_set: NetnsSet) -> Vpc:
    return Vpc(netns_set)


@dataclass
class AgentProc:
    node: Node
    workdir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def socket(self) -> str:
        return str(self.workdir / "run" / "cni.sock")

    @property
    def bin_dir(self) -> Path:
        return self.workdir / "bin"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "net.d"

    @property
    def plugin(self) -> str:
        return str(self.bin_dir / "tke-route-eni")

    @property
    def ip_file(self) -> Path:
        return self.workdir / "ips.json"

    @property
    def pod_file(self) -> Path:
        return self.workdir / "pods.json"

    @property
    def checkpoint(self) -> dict[str, Any]:
        lines = (self.workdir / "state" / "checkpoint.json").read_text().splitlines()
        return json.loads(lines[-1])  # a log of snapshots: the last one is the state

    def settled(self, cond: Any, timeout: float = 20.0) -> dict[str, Any]:
        """The checkpoint once ``cond(checkpoint)`` holds (DEL's write is async).
        The bound only ends a hung test; it is not a timing assertion."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.checkpoint
            if cond(state) or time.monotonic() > deadline:
                assert cond(state), f"checkpoint never settled: {state}\n{self.logs()[-3000:]}"
                return state
            time.sleep(0.05)

    def write_ips(self, data: dict[str, Any]) -> None:
        tmp = self.ip_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.ip_file)

    def start(self, *extra: str, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.log_path = self.workdir / f"agent-{time.monotonic_ns()}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.node.ns,
                PYTHON,
                "-m",
                "cni.agent.cli",
                *self.args,
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        log.close()
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"agent not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for p in sorted(self.workdir.glob("agent-*.log")):
            out.append(p.read_text(errors="replace")[-6000:])
        return "\n".join(out)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)


class AgentFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.agents: list[AgentProc] = []

    def __call__(
        self, node: Node, *extra: str, start: bool = True, eni_only: bool = True
    ) -> AgentProc:
        workdir = self.tmp_path / f"agent-{node.name}-{len(self.agents)}"
        for sub in ("run", "state", "bin", "net.d"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        args = [
            "--node-name",
            node.name,
            "--socket",
            str(workdir / "run" / "cni.sock"),
            "--state-dir",
            str(workdir / "state"),
            "--ip-source",
            "file",
            "--ip-source-file",
            str(workdir / "ips.json"),
            "--pod-source",
            "file",
            "--pod-source-file",
            str(workdir / "pods.json"),
            "--cni-bin-dir",
            str(workdir / "bin"),
            "--cni-conf-dir",
            str(workdir / "net.d"),
            "--health-address",
            "",
            "--reconcile-interval",
            "1",
            "--report-interval",
            "1",
            "--log-level",
            "DEBUG",
            "--eni-only",
            "true" if eni_only else "false",
        ]
        agent = AgentProc(node, workdir, args + list(extra))
        agent.write_ips(node.ip_source())
        agent.pod_file.write_text("{}")
        self.agents.append(agent)
        if start:
            agent.start()
        return agent

    def close(self) -> None:
        for agent in self.agents:
            agent.kill()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[AgentFactory]:
    factory = AgentFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.close()


@dataclass
class CniCall:
    rc: int
    out: dict[str, Any] | None
    stdout: str
    stderr: str


def run_plugin(
    exe: str,
    command: str,
    conf: dict[str, Any] | str | bytes | None,
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "eth0",
    args: str = "",
    cni_path: str = "",
    caller_ns: str | None = None,
    env_override: dict[str, str | None] | None = None,
) -> CniCall:
    """Run a CNI plugin the way a runtime does: a fresh process, env + stdin."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command}
    if container_id:
        env["CNI_CONTAINERID"] = container_id
    if netns:
        env["CNI_NETNS"] = netns
    if ifname:
        env["CNI_IFNAME"] = ifname
    if args:
        env["CNI_ARGS"] = args
    env["CNI_PATH"] = cni_path or f"{os.path.dirname(exe)}:{DEBIAN_CNI}"
    for key, value in (env_override or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if isinstance(conf, dict):
        data = json.dumps(conf).encode()
    elif isinstance(conf, str):
        data = conf.encode()
    else:
        data = conf or b""
    argv = ["ip", "netns", "exec", caller_ns, exe] if caller_ns else [exe]
    proc = subprocess.run(argv, input=data, env=env, capture_output=True, timeout=120, check=False)
    stdout = proc.stdout.decode(errors="replace")
    try:
        out = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        out = None
    return CniCall(proc.returncode, out, stdout, proc.stderr.decode(errors="replace"))


class Runtime:
    """A tiny libcni: runs a conflist's plugins in order (ADD) or reverse (DEL),
    passing prevResult like containerd does."""

    def __init__(
        self, conflist: dict[str, Any], cni_path: str, caller_ns: str | None = None
    ) -> None:
        self.conflist = conflist
        self.cni_path = cni_path
        self.caller_ns = caller_ns

    def _conf(
        self,
        plugin: dict[str, Any],
        prev: dict[str, Any] | None,
        runtime_config: dict[str, Any] | None,
    ) -> dict[str, Any]:
        conf = dict(plugin)
        conf["cniVersion"] = self.conflist["cniVersion"]
        conf["name"] = self.conflist["name"]
        caps = plugin.get("capabilities") or {}
        if runtime_config:
            rc = {k: v for k, v in runtime_config.items() if caps.get(k)}
            if rc:
                conf["runtimeConfig"] = rc
        conf.pop("capabilities", None)
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def _exe(self, plugin: dict[str, Any]) -> str:
        for d in self.cni_path.split(":"):
            p = os.path.join(d, plugin["type"])
            if os.access(p, os.X_OK):
                return p
        raise FileNotFoundError(plugin["type"])

    def add(
        self, cid: str, netns: str, args: str = "", runtime_config: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        prev: dict[str, Any] | None = None
        for plugin in self.conflist["plugins"]:
            call = run_plugin(
                self._exe(plugin),
                "ADD",
                self._conf(plugin, prev, runtime_config),
                container_id=cid,
                netns=netns,
                args=args,
                cni_path=self.cni_path,
                caller_ns=self.caller_ns,
            )
            assert call.rc == 0, f"{plugin['type']} ADD failed: {call.stdout} {call.stderr}"
            assert call.out is not None
            prev = call.out
        assert prev is not None
        return prev

    def check(
        self,
        cid: str,
        netns: str,
        result: dict[str, Any],
        args: str = "",
        runtime_config: dict[str, Any] | None = None,
    ) -> list[CniCall]:
        return [
            run_plugin(
                self._exe(p),
                "CHECK",
                self._conf(p, result, runtime_config),
                container_id=cid,
                netns=netns,
                args=args,
                cni_path=self.cni_path,
                caller_ns=self.caller_ns,
            )
            for p in self.conflist["plugins"]
        ]

    def delete(
        self,
        cid: str,
        netns: str,
        result: dict[str, Any] | None,
        args: str = "",
        runtime_config: dict[str, Any] | None = None,
    ) -> list[CniCall]:
        return [
            run_plugin(
                self._exe(p),
                "DEL",
                self._conf(p, result, runtime_config),
                container_id=cid,
                netns=netns,
                args=args,
                cni_path=self.cni_path,
                caller_ns=self.caller_ns,
            )
            for p in reversed(self.conflist["plugins"])
        ]


class NetnsTcpProxy:
    """Listen on 127.0.0.1 inside a netns and forward to ``target`` in this
    (the root) netns: lets an agent inside a node netns reach the local
    kube-apiserver, which listens on the root netns' loopback only."""

    def __init__(self, netns: str, target: tuple[str, int]) -> None:
        from cni.agent.dataplane.nsutil import in_netns

        self.target = target
        with in_netns(f"/run/netns/{netns}"):
            self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @classmethod
    def to_apiserver(cls, netns: str, server: str) -> Self:
        """A proxy to the local kube-apiserver (``server``: its https URL, on the
        root netns' loopback)."""
        return cls(netns, ("127.0.0.1", int(server.rsplit(":", 1)[1])))

    def kubeconfig(self, source: Path | str, dest: Path) -> Path:
        """``source`` with every cluster reached through this proxy, written to ``dest``."""
        import yaml

        cfg = yaml.safe_load(Path(source).read_text())
        for cluster in cfg["clusters"]:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        dest.write_text(yaml.safe_dump(cfg))
        return dest

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            self._conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop = True
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()
