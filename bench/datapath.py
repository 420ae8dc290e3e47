"""``python -m bench.datapath``: route-ENI (ours) against the Global Router bridge, on the
local run's real nodes and VPC fabric, in one run (issue 17 item 1; docs/cni.md "Data
path benchmark"). Run by hand as root under the local run's lock::

    flock /tmp/tke-e2e.lock .venv/bin/python -m bench.datapath

One ``localrun`` Environment (prefix ``tdp``, three real nodes: node-a and node-b in zone
3, node-c in zone 4). Two sets of busybox pods, the same on both sides:

- ours: the annotation ``tke.cloud.tencent.com/networks: tke-route-eni`` and one
  ``eni-ip`` (veth + /32 + policy routing through the node's ENI, the VPC routes the /32);
- the bridge: no annotation, so the mixed cluster's default network: Debian's ``bridge``
  (``cni0``) + ``host-local`` on the node's podCIDR. Global Router has the VPC route each
  node's podCIDR to the node; the bench adds those routes to the fabric namespace for the
  run (``ip -n <fabric> route add <podCIDR> via <node IP>``) and removes them after.

Pods: a1, a2 on node-a, b on node-b, c on node-c. Paths: same node (a1 → a2), cross-node
in a zone (a1 → b), cross-zone (a1 → c). For each path and figure ours and the bridge run
back to back (the order alternates by round); the tools run from the host inside the
pods' network namespaces (``nsenter --net``): iperf3 ``-t 5`` with 1 and 4 streams,
sockperf TCP ping-pong (full round trip p50/p99), and the machine's busy CPUs from
``/proc/stat`` during iperf3 (every namespace shares this kernel: CPU per Gbit/s counts
the sender, the receiver and the forwarding nodes together, plus whatever else runs).
Printed: per path and figure, ours, the bridge, ours ÷ bridge (median over rounds), the
load average before and after, and the node-side settings that shape the path."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bench import datapath_tools as tools
from bench.localrun_bench import LocalRun, arguments, not_root, report, spread

if TYPE_CHECKING:
    from localrun.environment import Environment

PREFIX = "tdp"
PODS = {"a1": "node-a", "a2": "node-a", "b": "node-b", "c": "node-c"}
PATHS = {"same node (node-a)": ("a1", "a2"),
         "cross-node, zone 3 (node-a → node-b)": ("a1", "b"),
         "cross-zone (node-a → node-c)": ("a1", "c")}
SIDES = ("ours", "bridge")


@dataclass
class Endpoint:
    name: str
    node: str
    ip: str
    pid: int


@dataclass
class Figures:
    """Every round's value of each figure, per path and side."""
    values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def add(self, path: str, figure: str, side: str, value: float) -> None:
        self.values.setdefault((path, figure, side), []).append(value)

    def median(self, path: str, figure: str, side: str) -> float | None:
        got = self.values.get((path, figure, side))
        return statistics.median(got) if got else None


#: (figure, unit, higher is better)
FIGURE_SPECS = (("TCP 1 stream", "Gbit/s", True), ("TCP 4 streams", "Gbit/s", True),
                ("CPU per Gbit/s (1 stream)", "cores", False),
                ("CPU per Gbit/s (4 streams)", "cores", False),
                ("retransmits (4 streams)", "segs", False),
                ("RTT p50", "µs", False), ("RTT p99", "µs", False))


def pod_name(side: str, key: str) -> str:
    return f"dp-{side}-{key}"


def measure_path(figs: Figures, path: str, client: Endpoint, server: Endpoint,
                 seconds: int, rr_seconds: int) -> None:
    side = client.name.split("-")[1]
    with tools.servers(server.pid, server.ip):
        one = tools.iperf3(client.pid, server.ip, seconds, 1)
        four = tools.iperf3(client.pid, server.ip, seconds, 4)
        rtt = tools.sockperf(client.pid, server.ip, rr_seconds)
    figs.add(path, "TCP 1 stream", side, one.gbps)
    figs.add(path, "TCP 4 streams", side, four.gbps)
    figs.add(path, "CPU per Gbit/s (1 stream)", side, one.cores_per_gbps)
    figs.add(path, "CPU per Gbit/s (4 streams)", side, four.cores_per_gbps)
    figs.add(path, "retransmits (4 streams)", side, float(four.retransmits))
    figs.add(path, "RTT p50", side, rtt.p50_us)
    figs.add(path, "RTT p99", side, rtt.p99_us)
    print(f"    {side:6} {path}: 1 stream {one.gbps:.2f} Gbit/s ({one.cores:.2f} cores), "
          f"4 streams {four.gbps:.2f} Gbit/s ({four.cores:.2f} cores, "
          f"{four.retransmits} retr), RTT p50 {rtt.p50_us:.1f} µs p99 {rtt.p99_us:.1f} µs "
          f"({rtt.observations} obs)", flush=True)


def table(figs: Figures) -> str:
    """Per path and figure: each side's median over the rounds with its spread
    [min–max], and the ratio of the medians."""
    lines = [f"  {'path':38} {'figure':34} {'ours':>9} {'[min–max]':>15} {'bridge':>9} "
             f"{'[min–max]':>15} {'ours/bridge':>11}  better"]
    for path in PATHS:
        for figure, unit, higher in FIGURE_SPECS:
            ours = figs.median(path, figure, "ours")
            bridge = figs.median(path, figure, "bridge")
            if ours is None or bridge is None:
                continue
            ratio = f"{ours / bridge:.2f}" if bridge else "-"
            lines.append(
                f"  {path:38} {figure + ' (' + unit + ')':34} {ours:9.2f} "
                f"{spread(figs.values[(path, figure, 'ours')]):>15} {bridge:9.2f} "
                f"{spread(figs.values[(path, figure, 'bridge')]):>15} {ratio:>11}  "
                f"{'higher' if higher else 'lower'}")
    return "\n".join(lines)


def run(cmd: list[str], check: bool = True) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def node_settings(env: Environment, node: str) -> str:
    """What shapes the path on a node: policy rules, rp_filter, the pods' veth offloads."""
    ns = env.real[node].node.netns_name
    rules = run(["ip", "-n", ns, "rule", "show"]).strip().splitlines()
    sysctl = {}
    for key in ("all", "default"):
        path = f"net.ipv4.conf.{key}.rp_filter"
        sysctl[key] = run(["ip", "netns", "exec", ns, "sysctl", "-n", path], check=False).strip()
    links = run(["ip", "-n", ns, "-o", "link", "show"]).strip().splitlines()
    names = [ln.split(": ")[1].split("@")[0] for ln in links if ": " in ln]
    return (f"  {node}: {len(rules)} ip rules, rp_filter all={sysctl['all']} "
            f"default={sysctl['default']}; links: {' '.join(names)}")


def path_notes(env: Environment, eps: dict[str, Endpoint]) -> list[str]:
    """How each side's same-node pair is forwarded on node-a (route, neighbour, pod MTU),
    and the node's packet filter (every forwarded or, with br_netfilter, bridged packet
    passes it)."""
    ns = env.real["node-a"].node.netns_name
    notes = []
    for side in SIDES:
        a1, a2 = eps[pod_name(side, "a1")], eps[pod_name(side, "a2")]
        to_a1 = run(["ip", "-n", ns, "-o", "route", "get", a1.ip], check=False).split()
        dev = to_a1[to_a1.index("dev") + 1] if "dev" in to_a1 else ""
        route = run(["ip", "-n", ns, "-o", "route", "get", a2.ip, "from", a1.ip, "iif", dev],
                    check=False).strip() if dev else "?"
        neigh = run(["ip", "-n", ns, "neigh", "show", a2.ip], check=False).strip()
        mtu = run(tools.in_netns(a1.pid, ["ip", "-o", "link", "show", "eth0"]),
                  check=False).split()
        pod_mtu = mtu[mtu.index("mtu") + 1] if "mtu" in mtu else "?"
        notes.append(f"  {side:6} a1 -> a2 on node-a: {' '.join(route.split())}; "
                     f"neighbour: {neigh or '-'}; pod eth0 mtu {pod_mtu}")
    nft = run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"], check=False)
    bnf = run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
              check=False).strip()
    notes.append(f"  node-a: nftables ruleset {len(nft.splitlines())} lines, "
                 f"bridge-nf-call-iptables={bnf or '-'}")
    return notes


def start_pods(env: Environment) -> dict[str, Endpoint]:
    from localrun.pods import plain_pod, running_pod
    from localrun.workloads import container_pids

    for side in SIDES:
        for key, node in PODS.items():
            env.kube.apply(plain_pod(pod_name(side, key), node_name=node, eni=side == "ours"))
    out: dict[str, Endpoint] = {}
    for side in SIDES:
        for key, node in PODS.items():
            name = pod_name(side, key)
            pod = running_pod(env.kube, name, timeout=240)
            pid = container_pids(env.real[node].node, pod, "main")[0]
            out[name] = Endpoint(name, node, pod["status"]["podIP"], pid)
            print(f"  {name:12} {node}  {pod['status']['podIP']:15} pid {pid}", flush=True)
    return out


def fabric_routes(env: Environment) -> list[list[str]]:
    """Global Router's VPC routes (each node's podCIDR → the node), as ``ip route`` args."""
    routes = []
    for name, real in env.real.items():
        node = env.kube.node(name) or {}
        cidr = (node.get("spec") or {}).get("podCIDR") or real.pod_subnet
        if not cidr:
            raise RuntimeError(f"node {name} has no podCIDR (kube-controller-manager's node "
                               "IPAM gives one)")
        routes.append([cidr, "via", real.private_ip])
    return routes


def measure(env: Environment, rounds: int, seconds: int, rr_seconds: int) -> Figures:
    eps = start_pods(env)
    for node in sorted(set(PODS.values())):
        print(node_settings(env, node), flush=True)
    print("\n".join(path_notes(env, eps)), flush=True)
    figs = Figures()
    for r in range(rounds):
        order = SIDES if r % 2 == 0 else tuple(reversed(SIDES))
        print(f"  round {r + 1}/{rounds} (first: {order[0]})", flush=True)
        for path, (ck, sk) in PATHS.items():
            for side in order:
                measure_path(figs, path, eps[pod_name(side, ck)], eps[pod_name(side, sk)],
                             seconds, rr_seconds)
    return figs


def with_fabric_routes(env: Environment, body: Callable[[], Figures]) -> Figures:
    added: list[list[str]] = []
    try:
        for route in fabric_routes(env):
            run(["ip", "-n", env.fabric, "route", "add", *route])
            added.append(route)
            print(f"  fabric route {' '.join(route)} (Global Router's VPC route)", flush=True)
        return body()
    finally:
        for route in added:
            run(["ip", "-n", env.fabric, "route", "del", *route], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m bench.datapath", __doc__, rounds=5)
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 -t")
    parser.add_argument("--rr-seconds", type=int, default=3, help="sockperf ping-pong -t")
    args = parser.parse_args(argv)
    if not_root("bench.datapath"):
        return 2
    tools.require_tools()

    with LocalRun("datapath", PREFIX) as run:
        env = run.env
        figs = with_fabric_routes(
            env, lambda: measure(env, args.rounds, args.seconds, args.rr_seconds))
        report(f"route-ENI (ours) vs the bridge (cni0 + host-local, VPC-routed podCIDRs), "
               f"median of {args.rounds} round(s) [min–max], iperf3 -t {args.seconds}, "
               f"sockperf -t {args.rr_seconds}", table(figs))
    return run.exit_code


if __name__ == "__main__":
    sys.exit(main())
