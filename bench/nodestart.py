"""``python -m bench.nodestart``: node start to first pod, with realistic cloud latency
(issue 17 item 3; docs/cloud.md "Node start to first pod"). Run by hand as root under
the local run's lock::

    flock /tmp/tke-e2e.lock .venv/bin/python -m bench.nodestart

One ``localrun`` Environment per ipamd warm target (``--prebind``, default
``default,30``: deploy/'s 5 warm IPs per node, then 30 as an operator expecting bursts
would set; prefix ``tns``, two real nodes in zone 3 for the components). Then, for
each latency profile (``--profiles``, default ``cloud,none``:
the emulator's typical cloud figures, then none as the floor), the emulator's profile
is set (``POST /_admin/faults {"profile": ...}``) and one more real node joins
(``localrun.joinnode``; an ``--instance-type`` with room for the burst). The moment
its Node is Ready, ``--burst`` ENI pods (busybox, one ``eni-ip`` each) pinned to it
are created. Printed per join: Node Ready (join start -> Ready), Ready -> ``eni-ip``
allocatable > 0, Ready -> first pod Running, the burst's pod start (creation ->
Running) p50/p99/max, ``FailedCreatePodSandBox`` events (target 0), the cloud calls
the join made, the machine's load; and the anchor: AWS VPC CNI's published figure
for a 30-pod burst on a new node (p50 ~5 s before its fix, ~0.75 s after)."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localrun.joinnode import JoinResult

WORKDIR = Path("/var/lib/tke-e2e")
PREFIX = "tns"
ANCHOR = ("AWS VPC CNI, 30-pod burst on a just-joined node (published, docs/cloud.md): "
          "p50 ~5 s before the fix, ~0.75 s after")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _cpu_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class Load:
    """The machine's load average and busy CPUs over an interval (/proc/stat)."""

    def __init__(self) -> None:
        self.before = os.getloadavg()[0]
        self.busy0, self.total0 = _cpu_jiffies()

    def line(self) -> str:
        busy, total = _cpu_jiffies()
        share = (busy - self.busy0) / max(1, total - self.total0)
        cpus = os.cpu_count() or 1
        return (f"load average {self.before:.2f} -> {os.getloadavg()[0]:.2f} (1 min), "
                f"{share * cpus:.2f} of {cpus} CPUs busy meanwhile")


def row(setting: str, r: JoinResult, load: str) -> str:
    def s(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"
    return (f"| {setting} | {r.ready_s:.1f} s | {s(r.eni_ip_s)} | {s(r.first_running_s)} "
            f"| {pct(r.starts, 50):.2f} s | {pct(r.starts, 99):.2f} s | {max(r.starts):.2f} s "
            f"| {pct(r.waits, 50):.2f} / {pct(r.waits, 99):.2f} s "
            f"| {pct(r.runs, 50):.2f} / {pct(r.runs, 99):.2f} s "
            f"| {r.running}/{r.burst} | {r.sandbox_failures} | {load} |")


def print_join(setting: str, r: JoinResult, load: str) -> None:
    print(f"  {row(setting, r, load)}", flush=True)
    print(f"  eni-ip allocatable (s after Ready, value): {r.allocatable}", flush=True)
    print(f"  cloud calls: {r.cloud_calls}", flush=True)
    for why, n in sorted(r.why.items(), key=lambda kv: -kv[1]):
        print(f"  FailedCreatePodSandBox {n} x {why}", flush=True)


def run_environment(prebind: str, joins: list[tuple[str, float]], burst: int,
                    instance_type: str,
                    keep: bool) -> tuple[list[tuple[str, JoinResult, str]], list[str]]:
    """One environment (ipamd's warm targets ``prebind``: "default" or N for both
    --min-prebind and --max-prebind); one joined node per (profile, settle seconds)."""
    from localrun.cloudspec import ZONE3
    from localrun.environment import Environment
    from localrun.joinnode import delete_burst, join_and_burst
    from localrun.nodedaemons import NodeSpec

    extra = {} if prebind == "default" else {"TKE_IPAMD_MIN_PREBIND": prebind,
                                             "TKE_IPAMD_MAX_PREBIND": prebind}
    workdir = WORKDIR / f"bench-nodestart-{secrets.token_hex(3)}"
    env = Environment(workdir, prefix=PREFIX, kwok_nodes=1, ipamd_extra_env=extra,
                      nodes=(NodeSpec("node-a", ZONE3), NodeSpec("node-b", ZONE3)),
                      progress=lambda line: print(line, flush=True))
    started = time.monotonic()
    results: list[tuple[str, JoinResult, str]] = []
    env.start()
    problems: list[str] = []
    try:
        assert env.emulator is not None
        print(f"environment up ({time.monotonic() - started:.0f} s), ipamd warm target "
              f"{prebind}", flush=True)
        for i, (profile, settle) in enumerate(joins):
            env.emulator.set_faults(profile=profile)
            spec = NodeSpec(f"join-{i}", ZONE3, instance_type)
            when = f"{settle:g} s after Ready" if settle else "at Ready"
            setting = f"{profile}, warm {prebind}, {when}"
            print(f"\n== {setting}: joining {spec.name} ({spec.instance_type}), burst {burst}",
                  flush=True)
            load = Load()
            r = join_and_burst(env, spec, burst, settle=settle,
                               progress=lambda line: print(f"  {line}", flush=True))
            results.append((setting, r, load.line()))
            print_join(setting, r, results[-1][2])
            delete_burst(env, r)
        env.emulator.set_faults(profile="")
    finally:
        problems = env.stop()
        if not problems and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return results, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nodestart", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", default="cloud,none",
                        help="emulator latency profiles, one joined node each (default "
                             "cloud,none; see vpcsim.latency)")
    parser.add_argument("--prebind", default="default,30",
                        help="ipamd warm targets, one environment each: 'default' (deploy/'s "
                             "5) or N for --min-prebind=--max-prebind=N (default default,30)")
    parser.add_argument("--burst", type=int, default=30, help="pods created at Ready (30)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="the reference: one more join per environment with the first "
                             "profile, the burst this many seconds after Ready (20; 0 = none)")
    parser.add_argument("--instance-type", default="S5.2XLARGE16",
                        help="the joined nodes' type (default S5.2XLARGE16: 6 ENIs x 20 IPs)")
    parser.add_argument("--keep", action="store_true", help="keep the workdirs")
    args = parser.parse_args(argv)
    from vpcsim import latency

    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    for p in profiles:
        try:
            latency.get(p)  # a clear error before anything starts
        except ValueError as exc:
            parser.error(f"--profiles: {exc}")
    prebinds = [p.strip() for p in args.prebind.split(",") if p.strip()]
    if not profiles or not prebinds:
        parser.error("--profiles and --prebind need at least one value each")
    for p in prebinds:
        if p != "default" and not p.isdigit():
            parser.error(f"--prebind: {p!r} is neither 'default' nor a number")
    if args.burst < 1:
        parser.error("--burst must be at least 1")
    results: list[tuple[str, JoinResult, str]] = []
    problems: list[str] = []
    joins = [(p, 0.0) for p in profiles]
    if args.settle > 0:
        joins.append((profiles[0], args.settle))
    for prebind in prebinds:
        got, left = run_environment(prebind, joins, args.burst, args.instance_type,
                                    args.keep)
        results += got
        problems += left
    print(f"\nnode start to first pod, burst of {args.burst} pinned to a just-joined "
          f"{args.instance_type} node, created at Ready")
    print("| profile, ipamd warm target, burst created | node Ready | Ready → eni-ip > 0 "
          "| Ready → first pod Running | pod start p50 | p99 | max "
          "| created → bound p50 / p99 | bound → Running p50 / p99 | Running "
          "| FailedCreatePodSandBox | machine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for setting, r, machine in results:
        print(row(setting, r, machine))
    print(f"anchor: {ANCHOR}")
    for setting, r, _ in results:
        p50 = pct(r.starts, 50)
        print(f"{setting}: p50 {p50:.2f} s = {p50 / 5.0:.2f}x the anchor's before, "
              f"{p50 / 0.75:.2f}x its after")
    if problems:
        print(f"teardown problems: {problems}")
    bad = [p for p, r, _ in results if r.sandbox_failures]
    return 1 if bad or problems else 0


if __name__ == "__main__":
    sys.exit(main())
