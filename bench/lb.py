"""``python -m bench.lb``: a load balancer straight to the pods (route-ENI) against the
NodePort path a bridge-mode cluster needs, in one run on the local run's real nodes and
VPC fabric (issue 17 item 2; docs/cni.md "Load balancer straight to pods"). Run by hand
as root under the local run's lock::

    flock /tmp/tke-e2e.lock .venv/bin/python -m bench.lb

One ``localrun`` Environment (prefix ``tlb``, three real nodes). A Deployment of 3 HTTP
servers (busybox ``httpd`` from the nodes' ``nginx`` stand-in image, route-ENI pods, one
per node) and its NodePort Service. The L4 LB stand-in (``localrun.lbsim``: nftables
destination NAT in its own namespace on the fabric, the client behind it) has two
listeners on the same VIP:

- direct (``:80``): the pods' VPC IPs, from the Service's EndpointSlices (watched);
- NodePort (``:8080``): every real node's ``IP:nodePort``; kube-proxy (nftables mode) on
  the node picks a pod, on this node or another, and masquerades (``Cluster`` policy).

Printed: which source address the pods see on each path (the echo CGI answers the peer
address), then per round and path wrk (Debian's ``wrk``, ``-t1``, a new connection per
request: the servers close after each reply) with ``--connections`` (8): requests/s and
latency p50/p99 (request written → reply read; the TCP handshake is not in it) and the
machine's busy CPUs during the run, and the kernel counters that moved during it
(``COUNTERS``: the client's SYN retransmits and resets, conntrack's insert failures and
drops in the LB and on the nodes, the pods' listen-queue overflows); then wrk with 1
connection (latency without queueing in the servers), and the table of medians over the
rounds with their spread [min–max] and direct ÷ NodePort. The order of the paths
alternates by round. The load average is printed before and after each round."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.datapath_tools import busy_cores, cpu_sample
from bench.localrun_bench import LocalRun, arguments, load, not_root, report, spread

if TYPE_CHECKING:
    from localrun.environment import Environment
    from localrun.lbsim import LoadBalancer

PREFIX = "tlb"
NAME = "lb-web"
DIRECT_PORT = 80
NODEPORT_PORT = 8080
PATHS = {"direct": DIRECT_PORT, "NodePort": NODEPORT_PORT}
TOOLS = {"wrk": "wrk", "nsenter": "util-linux", "nft": "nftables"}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx


def _ms(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(f"not a wrk latency: {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    """wrk's ``--latency`` report. Pure; ValueError names what is missing."""
    def find(pattern: str, what: str) -> re.Match[str]:
        m = re.search(pattern, out, re.MULTILINE)
        if not m:
            raise ValueError(f"wrk output has no {what}:\n{out}")
        return m

    p50 = _ms(find(r"^\s+50%\s+(\S+)", "50% latency").group(1))
    p99 = _ms(find(r"^\s+99%\s+(\S+)", "99% latency").group(1))
    rps = float(find(r"^Requests/sec:\s+([0-9.]+)", "Requests/sec").group(1))
    requests = int(find(r"^\s+(\d+) requests in", "request count").group(1))
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(rps, p50, p99, requests, errors)


#: what moved during a run, by namespace: the client's TCP counters (/proc/net/snmp and
#: /proc/net/netstat; a SYN retransmit costs its connection a 1 s wait), conntrack's own
#: counters (/proc/net/stat/nf_conntrack, summed over CPUs) of the LB and of the real
#: nodes (kube-proxy's NAT on the NodePort path), the pods' listen queues (busybox httpd
#: listens with a backlog of 9)
COUNTERS = ("client.Tcp.ActiveOpens", "client.Tcp.AttemptFails", "client.Tcp.OutRsts",
            "client.TcpExt.TCPSynRetrans", "client.TcpExt.TCPTimeouts",
            "lb.insert_failed", "lb.drop", "lb.early_drop", "lb.invalid", "lb.entries",
            "nodes.insert_failed", "nodes.drop", "nodes.early_drop", "nodes.invalid",
            "pods.TcpExt.ListenOverflows", "pods.TcpExt.ListenDrops",
            "pods.TcpExt.TCPTimeWaitOverflow", "pods.Tcp.OutRsts")
#: gauges: printed as the value after the run, not as a difference
GAUGES = ("lb.entries",)
CT_COUNTERS = ("insert_failed", "drop", "early_drop", "clashres", "invalid")


def parse_snmp(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` or ``/proc/net/netstat`` (pairs of ``Proto: names`` and
    ``Proto: values`` lines) as ``{"Proto.Name": value}``. Pure."""
    out: dict[str, int] = {}
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if not names or names[0] != values[0]:
            continue
        proto = names[0].rstrip(":")
        for name, value in zip(names[1:], values[1:], strict=False):
            if value.lstrip("-").isdigit():
                out[f"{proto}.{name}"] = int(value)
    return out


def parse_ct_stat(text: str) -> dict[str, int]:
    """``/proc/net/stat/nf_conntrack`` (a header, then one line of hex counters per
    CPU) summed over the CPUs; ``entries`` is the table's size (the same on every
    line), not summed. Pure."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return {}
    header, rows = lines[0], lines[1:]
    out = dict.fromkeys(header, 0)
    for row in rows:
        for name, value in zip(header, row, strict=False):
            out[name] = int(value, 16) if name == "entries" else out[name] + int(value, 16)
    return out


def delta(before: dict[str, int], after: dict[str, int], keys: tuple[str, ...]) -> dict[str, int]:
    """What each of ``keys`` moved by (a missing counter counts 0); a ``GAUGES`` key is
    its value after. Pure."""
    return {k: after.get(k, 0) - (0 if k in GAUGES else before.get(k, 0)) for k in keys}


def _summed(into: dict[str, int], prefix: str, counters: dict[str, int]) -> None:
    for k, v in counters.items():
        into[f"{prefix}.{k}"] = into.get(f"{prefix}.{k}", 0) + v


@dataclass(frozen=True)
class Probe:
    """Where a run's counters are read: the client's and the LB's namespaces, each real
    node's, and each backend pod's (``/proc/<pid>/ns/net``)."""

    client: str
    lb: str
    nodes: tuple[str, ...]
    pods: tuple[str, ...] = ()

    def read(self) -> dict[str, int]:
        """Every counter, as ``<where>.<name>`` (nodes and pods summed)."""
        out: dict[str, int] = {}
        _summed(out, "client", parse_snmp(_cat(self.client, "/proc/net/snmp")))
        _summed(out, "client", parse_snmp(_cat(self.client, "/proc/net/netstat")))
        _summed(out, "lb", parse_ct_stat(_cat(self.lb, "/proc/net/stat/nf_conntrack")))
        for ns in self.nodes:
            _summed(out, "nodes", parse_ct_stat(_cat(ns, "/proc/net/stat/nf_conntrack")))
        for ns in self.pods:
            _summed(out, "pods", parse_snmp(_cat(ns, "/proc/net/snmp")))
            _summed(out, "pods", parse_snmp(_cat(ns, "/proc/net/netstat")))
        return out


def _cat(netns_name: str, path: str) -> str:
    from localnode.proc import ns_argv

    done = subprocess.run(ns_argv(["cat", path], netns=netns_name), capture_output=True,
                          text=True, check=False, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def require_tools() -> None:
    missing = [f"{t} (Debian package {p})" for t, p in TOOLS.items() if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing: {', '.join(missing)}; run hack/setup-debian.sh")


def wrk(lb: LoadBalancer, port: int, seconds: int, connections: int,
        probe: Probe) -> tuple[WrkResult, float, dict[str, int]]:
    """One wrk run; its result, the machine's busy CPUs and what the counters of
    ``probe`` moved by (``COUNTERS``)."""
    from localrun.lbsim import VIP

    argv = lb.client_argv(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                           f"http://{VIP}:{port}/"])
    counters0 = probe.read()
    before = cpu_sample()
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          timeout=seconds + 60)
    cores = busy_cores(before, cpu_sample())
    moved = delta(counters0, probe.read(), COUNTERS)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout), cores, moved


def counters_line(moved: dict[str, int]) -> str:
    """The counters that moved, short (``-`` when none did)."""
    return ", ".join(f"{k} {v}" for k, v in moved.items() if v) or "-"


def start_workload(env: Environment, lb: LoadBalancer) -> list[dict[str, Any]]:
    from localrun.kube import wait_for
    from localrun.lbclient import echo_deployment, echo_service
    from localrun.lbsim import Backend
    from localrun.pods import running_pods

    kube = env.kube
    kube.apply(echo_service(NAME))
    kube.apply(echo_deployment(NAME, len(env.real), sorted(env.real)))
    pods = running_pods(kube, f"app={NAME}", len(env.real), timeout=240)
    svc = kube.get(f"/api/v1/namespaces/default/services/{NAME}") or {}
    node_port = int(svc["spec"]["ports"][0]["nodePort"])
    lb.watch_service(DIRECT_PORT, kube, "default", NAME)
    lb.set_backends(NODEPORT_PORT, [Backend(rn.private_ip, node_port)
                                    for rn in env.real.values()])
    want = {Backend(p["status"]["podIP"], 80) for p in pods}
    wait_for("the LB's direct backends = the ready pods",
             lambda: set(lb.backends(DIRECT_PORT)) == want, timeout=120,
             detail=lambda: f"have {lb.backends(DIRECT_PORT)}, want {sorted(want)}")
    for port in PATHS.values():  # kube-proxy programs the NodePort a little later
        lb.wait_answering(port)
    for p in pods:
        print(f"  {p['metadata']['name']:24} {p['spec']['nodeName']:8} {p['status']['podIP']}",
              flush=True)
    print(f"  direct   :{DIRECT_PORT}   -> {', '.join(map(str, lb.backends(DIRECT_PORT)))}")
    print(f"  NodePort :{NODEPORT_PORT} -> {', '.join(map(str, lb.backends(NODEPORT_PORT)))}",
          flush=True)
    return pods


def measure(env: Environment, lb: LoadBalancer, pods: list[dict[str, Any]], rounds: int,
            seconds: int, connections: int) -> dict[tuple[str, str], list[float]]:
    from localrun.lbsim import CLIENT_ADDRESS
    from localrun.workloads import container_pids

    node_ips = {rn.private_ip: name for name, rn in env.real.items()}
    for path, port in PATHS.items():
        seen = lb.probe(port, 12)
        peers = Counter(seen["peers"])
        named = ", ".join(f"{a} ({'the client' if a == CLIENT_ADDRESS else node_ips.get(a, '?')})"
                          f" ×{n}" for a, n in peers.most_common())
        print(f"  {path:8} source address the pods saw: {named}; "
              f"{seen['ok']}/{seen['requests']} ok, pods {sorted(seen['pods'])}"
              + (f"; failures {seen['failures'][:3]}" if seen["failed"] else ""), flush=True)
    pod_netns = tuple(
        f"/proc/{container_pids(env.real[p['spec']['nodeName']].node, p, 'web')[0]}/ns/net"
        for p in pods)
    probe = Probe(lb.client_netns, lb.netns,
                  tuple(rn.node.netns_name for rn in env.real.values()), pod_netns)
    values: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        order = list(PATHS) if r % 2 == 0 else list(reversed(PATHS))
        for path in order:
            res, cores, moved = wrk(lb, PATHS[path], seconds, connections, probe)
            one, _, moved1 = wrk(lb, PATHS[path], seconds, 1, probe)
            for key, v in (("requests/s", res.rps), ("latency p50 (ms)", res.p50_ms),
                           ("latency p99 (ms)", res.p99_ms), ("busy CPUs", cores),
                           ("SYN retransmits", float(moved["client.TcpExt.TCPSynRetrans"])),
                           ("1 conn: p50 (ms)", one.p50_ms), ("1 conn: p99 (ms)", one.p99_ms),
                           ("errors", float(res.errors + one.errors))):
                values.setdefault((path, key), []).append(v)
            print(f"  round {r + 1}/{rounds} {path:8} -c{connections}: {res.rps:6.0f} req/s "
                  f"p50 {res.p50_ms:5.2f} ms p99 {res.p99_ms:6.2f} ms, {res.requests} "
                  f"requests, {cores:.2f} busy CPUs, counters: {counters_line(moved)}; "
                  f"-c1: {one.rps:5.0f} req/s p50 {one.p50_ms:5.2f} ms p99 {one.p99_ms:6.2f} "
                  f"ms, counters: {counters_line(moved1)}; {res.errors + one.errors} errors; "
                  f"{load()}", flush=True)
    return values


def table(values: dict[tuple[str, str], list[float]]) -> str:
    """Per figure: each path's median over the rounds with its spread [min–max], and
    the ratio of the medians."""
    lines = [f"  {'figure':18} {'direct':>9} {'[min–max]':>15} {'NodePort':>9} "
             f"{'[min–max]':>15} {'direct/NodePort':>16}"]
    for key in ("requests/s", "latency p50 (ms)", "latency p99 (ms)", "busy CPUs",
                "SYN retransmits", "1 conn: p50 (ms)", "1 conn: p99 (ms)", "errors"):
        d = statistics.median(values[("direct", key)])
        n = statistics.median(values[("NodePort", key)])
        ratio = f"{d / n:.2f}" if n else "-"
        lines.append(f"  {key:18} {d:9.2f} {spread(values[('direct', key)]):>15} {n:9.2f} "
                     f"{spread(values[('NodePort', key)]):>15} {ratio:>16}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m bench.lb", __doc__, rounds=3)
    parser.add_argument("--seconds", type=int, default=10, help="wrk -d per path and round")
    parser.add_argument("--connections", type=int, default=8, help="wrk -c")
    args = parser.parse_args(argv)
    if not_root("bench.lb"):
        return 2
    require_tools()
    from localrun.lbsim import LoadBalancer

    with LocalRun("lb", PREFIX) as run:
        lb = LoadBalancer(PREFIX, run.env.fabric).up()
        try:
            pods = start_workload(run.env, lb)
            values = measure(run.env, lb, pods, args.rounds, args.seconds, args.connections)
        finally:
            run.problems += lb.down()
        report(f"LB straight to pods (route-ENI) vs LB → NodePort → kube-proxy → pod, "
               f"median of {args.rounds} round(s) [min–max], wrk -t1 -c{args.connections} "
               f"-d{args.seconds}s, a connection per request", table(values))
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
