"""Cloud-layer latency per adapter call (p50/p99) and calls/s against the
emulator, with and without injected API latency.

    python -m bench.cloud_latency [--rounds 20] [--latency-ms 50]

Writes wait for their async task (emulator task time 20 ms, production poll
settings: first poll after 50 ms), so a write's latency includes the task wait."""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

from cloud.adapter import TencentCloud
from cloud.settings import from_env
from core.ids import InstanceId, SubnetId, VpcId
from vpcsim.testing import EmulatorHandle, run_emulator

VPC = VpcId("vpc-sim00001")
POD3 = SubnetId("subnet-sim00033")
NODE = InstanceId("ins-sim00001")


def _cloud(emu: EmulatorHandle, **overrides: Any) -> TencentCloud:
    """The adapter configured from the emulator's client environment (fast polling)."""
    settings = replace(
        from_env(emu.client_env()),
        cluster_id="cls-sim00001",
        rate_fraction=1.0,
        task_poll_s=0.025,
        task_poll_max_s=0.1,
        backoff_base_s=0.02,
        backoff_max_s=0.5,
        task_timeout_s=30,
    )
    return TencentCloud.from_settings(replace(settings, **overrides))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class _Timer:
    def __init__(self, samples: dict[str, list[float]], name: str) -> None:
        self.samples, self.name = samples, name

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.samples[self.name].append(time.perf_counter() - self.t0)


def run_sequence(
    emu: EmulatorHandle, cloud: TencentCloud, rounds: int
) -> tuple[dict[str, list[float]], float, int]:
    samples: dict[str, list[float]] = defaultdict(list)

    def timed(name: str) -> _Timer:
        return _Timer(samples, name)

    calls_before = sum(emu.emulator.api.calls.values())
    start = time.perf_counter()
    for i in range(rounds):
        with timed("describe_instances"):
            cloud.describe_instances([NODE])
        with timed("eni_limits"):
            cloud.eni_limits(NODE)
        with timed("describe_subnets"):
            cloud.describe_subnets(vpc_id=VPC)
        with timed("create_eni"):
            eni = cloud.create_eni(
                vpc_id=VPC, subnet_id=POD3, name=f"bench-{i}", secondary_ip_count=2
            )
        with timed("attach_eni"):
            cloud.attach_eni(eni.eni_id, NODE)
        with timed("assign_ips(2)"):
            ips = cloud.assign_ips(eni.eni_id, count=2)
        with timed("describe_enis(node)"):
            cloud.describe_enis(instance_id=NODE)
        with timed("unassign_ips(2)"):
            cloud.unassign_ips(eni.eni_id, ips)
        with timed("detach_eni"):
            cloud.detach_eni(eni.eni_id, NODE)
        with timed("delete_eni"):
            cloud.delete_eni(eni.eni_id)
    elapsed = time.perf_counter() - start
    calls = sum(emu.emulator.api.calls.values()) - calls_before
    return samples, elapsed, calls


def describe_throughput(emu: EmulatorHandle, seconds: float, threads: int) -> float:
    """Raw DescribeNetworkInterfaces calls/s from ``threads`` clients (limits off)."""
    emu.set_faults(rate_limits=False)
    cloud = _cloud(emu, rate_overrides={"DescribeNetworkInterfaces": 1e6})
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        while time.perf_counter() < stop:
            cloud.describe_enis(eni_ids=[], instance_id=NODE)
            counts[k] += 1

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    emu.set_faults(rate_limits=True)
    return sum(counts) / seconds


def write_throughput(emu: EmulatorHandle, seconds: float, threads: int, **overrides: Any) -> float:
    """Waited writes/s (assign 1 IP, then unassign it) from ``threads`` workers, one ENI each."""
    cloud = _cloud(emu, **overrides)
    enis = [cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name=f"wt-{k}") for k in range(threads)]
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        while time.perf_counter() < stop:
            ips = cloud.assign_ips(enis[k].eni_id, count=1)
            cloud.unassign_ips(enis[k].eni_id, ips)
            counts[k] += 2

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for eni in enis:
        cloud.delete_eni(eni.eni_id)
    return sum(counts) / seconds


def print_table(title: str, samples: dict[str, list[float]], elapsed: float, calls: int) -> None:
    print(f"\n{title}")
    print(f"{'call':<22}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, vals in samples.items():
        ms = [v * 1000 for v in vals]
        print(
            f"{name:<22}{len(ms):>5}{_pct(ms, 50):>10.1f}{_pct(ms, 99):>10.1f}"
            f"{statistics.fmean(ms):>10.1f}"
        )
    print(
        f"HTTP API calls: {calls} in {elapsed:.2f} s = {calls / elapsed:.1f} calls/s "
        f"({calls / len(next(iter(samples.values()))):.1f} calls per round)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--throughput-seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    with run_emulator() as emu:
        cloud = _cloud(emu, task_poll_s=0.05, task_poll_max_s=1.0, rate_fraction=0.5)
        cloud.describe_subnets(vpc_id=VPC)  # warm up
        s, el, n = run_sequence(emu, cloud, args.rounds)
        print_table("emulator, no injected latency (task time 20 ms)", s, el, n)
        emu.set_faults(latency_ms=args.latency_ms)
        s, el, n = run_sequence(emu, cloud, max(5, args.rounds // 2))
        print_table(f"emulator, {args.latency_ms:.0f} ms injected latency per API call", s, el, n)
        emu.set_faults(latency_ms=0)
        for label, overrides in (
            (
                "default adapter limits (task polls 10/s)",
                {"rate_fraction": 0.5, "task_poll_s": 0.05},
            ),
            (
                "task polls at 18/s",
                {
                    "rate_fraction": 0.5,
                    "task_poll_s": 0.05,
                    "rate_overrides": {"DescribeVpcTaskResult": 18},
                },
            ),
        ):
            rate = write_throughput(emu, args.throughput_seconds, 8, **overrides)
            print(f"\nwaited writes, 8 threads, {label}: {rate:.1f} writes/s")
        for threads in (1, 4):
            rate = describe_throughput(emu, args.throughput_seconds, threads)
            print(
                f"\nDescribeNetworkInterfaces, {threads} client thread(s), rate limits off: "
                f"{rate:.0f} calls/s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
