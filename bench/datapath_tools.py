"""The measuring tools of ``bench.datapath``, run from the host inside a pod's network
namespace (``nsenter --net=/proc/<pid>/ns/net``): iperf3 (TCP throughput), sockperf
(TCP request/response latency), and the machine's CPU use from ``/proc/stat``.

Parsing is pure (``parse_*``); the runners raise ``ToolError`` with the command and its
output when a tool fails or prints nothing usable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

IPERF_PORT = 5201
SOCKPERF_PORT = 11111
#: Debian packages (hack/setup-debian.sh)
TOOLS = {"iperf3": "iperf3", "sockperf": "sockperf", "nsenter": "util-linux"}


class ToolError(RuntimeError):
    pass


def require_tools() -> None:
    missing = [f"{tool} (Debian package {pkg})" for tool, pkg in TOOLS.items()
               if shutil.which(tool) is None]
    if missing:
        raise ToolError(f"missing: {', '.join(missing)}; run hack/setup-debian.sh")


def in_netns(pid: int, argv: Sequence[str]) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", *argv]


# ---- CPU --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuSample:
    busy: int  # jiffies, all CPUs
    total: int


def parse_proc_stat(text: str) -> CpuSample:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:]]
            idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
            total = sum(values[:8])  # guest time is already in user/nice
            return CpuSample(busy=total - idle, total=total)
    raise ToolError("/proc/stat has no 'cpu' line")


def cpu_sample() -> CpuSample:
    with open("/proc/stat") as f:
        return parse_proc_stat(f.read())


def busy_cores(before: CpuSample, after: CpuSample) -> float:
    """Average number of busy CPUs between two samples."""
    total = after.total - before.total
    if total <= 0:
        return 0.0
    return (after.busy - before.busy) / total * (os.cpu_count() or 1)


# ---- servers ----------------------------------------------------------------------------
@contextmanager
def servers(pid: int, address: str) -> Iterator[None]:
    """An iperf3 and a sockperf server in the network namespace of ``pid``, listening on
    ``address``; both stopped (by their own pids) on exit."""
    procs = [
        subprocess.Popen(in_netns(pid, ["iperf3", "-s", "-B", address, "-p", str(IPERF_PORT)]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(in_netns(pid, ["sockperf", "server", "--tcp", "-i", address,
                                        "-p", str(SOCKPERF_PORT)]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        _wait_listening(pid, [IPERF_PORT, SOCKPERF_PORT], procs)
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def _wait_listening(pid: int, ports: Sequence[int], procs: Sequence[subprocess.Popen[bytes]],
                    timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise ToolError(f"server exited at once: {dead}")
        out = subprocess.run(in_netns(pid, ["ss", "-Htln"]), capture_output=True, text=True,
                             check=False).stdout
        if all(re.search(rf":{port}\b", out) for port in ports):
            return
        time.sleep(0.1)
    raise ToolError(f"servers in the netns of pid {pid} not listening on {list(ports)} "
                    f"after {timeout:.0f} s")


# ---- clients ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Throughput:
    gbps: float
    retransmits: int
    cores: float  # average busy CPUs of the machine during the run

    @property
    def cores_per_gbps(self) -> float:
        return self.cores / self.gbps if self.gbps > 0 else float("nan")


def parse_iperf3(text: str) -> tuple[float, int]:
    """(received Gbit/s, retransmits) from ``iperf3 -J`` output."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"iperf3 printed no JSON: {text[:300]!r}") from exc
    if doc.get("error"):
        raise ToolError(f"iperf3: {doc['error']}")
    end = doc.get("end") or {}
    received = (end.get("sum_received") or {}).get("bits_per_second")
    if received is None:
        raise ToolError(f"iperf3 JSON has no end.sum_received: {text[:300]!r}")
    sent = end.get("sum_sent") or {}
    return float(received) / 1e9, int(sent.get("retransmits", 0))


def iperf3(pid: int, server: str, seconds: int, streams: int) -> Throughput:
    argv = in_netns(pid, ["iperf3", "-c", server, "-p", str(IPERF_PORT), "-t", str(seconds),
                          "-P", str(streams), "-J"])
    before = cpu_sample()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                          check=False)
    after = cpu_sample()
    if done.returncode != 0:
        raise ToolError(f"{' '.join(argv)} exited {done.returncode}: "
                        f"{(done.stdout + done.stderr)[-500:]}")
    gbps, retransmits = parse_iperf3(done.stdout)
    return Throughput(gbps=gbps, retransmits=retransmits, cores=busy_cores(before, after))


@dataclass(frozen=True)
class Latency:
    p50_us: float
    p99_us: float
    observations: int


_PERCENTILE = re.compile(r"percentile\s+(\d+\.\d+)\s*=\s*([\d.]+)")
_OBSERVATIONS = re.compile(r"Total\s+(\d+)\s+observations")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def parse_sockperf(text: str) -> Latency:
    """p50/p99 round-trip times (µs) from ``sockperf ping-pong --full-rtt`` output."""
    text = _ANSI.sub("", text)
    pct = {float(k): float(v) for k, v in _PERCENTILE.findall(text)}
    obs = _OBSERVATIONS.search(text)
    if 50.0 not in pct or 99.0 not in pct or obs is None:
        raise ToolError(f"sockperf printed no percentiles: {text[-500:]!r}")
    return Latency(p50_us=pct[50.0], p99_us=pct[99.0], observations=int(obs.group(1)))


def sockperf(pid: int, server: str, seconds: int) -> Latency:
    argv = in_netns(pid, ["sockperf", "ping-pong", "--tcp", "-i", server,
                          "-p", str(SOCKPERF_PORT), "-t", str(seconds), "--full-rtt"])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                          check=False)
    if done.returncode != 0:
        raise ToolError(f"{' '.join(argv)} exited {done.returncode}: "
                        f"{(done.stdout + done.stderr)[-500:]}")
    return parse_sockperf(done.stdout + done.stderr)
