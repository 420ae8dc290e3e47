"""Device plugin figures, through real gRPC over unix sockets with the
kubelet stand-in (the test bed's harness.kubelet):

- Allocate latency (one container, one device: what the kubelet sends);
- delay from a capacity change (CapacityFeed) to the kubelet stand-in
  receiving the new ListAndWatch list;
- kubelet restart → capacity back (re-registration gap);
- capacity per instance type through the whole path (metadata service →
  DescribeNetworkInterfaceLimit via the SDK adapter against the emulator).

Targets (DESIGN.md): Allocate p99 ≤ 2 ms; capacity change → ListAndWatch
≤ 100 ms. Run: ``python -m bench.device_plugin [--allocs N] [--changes N]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time

import grpc

from core.names import RESOURCE_ENI_IP
from device_plugin.manager import DevicePluginManager
from device_plugin.settings import Settings
from harness.kubelet import KubeletStandin
from protos.v1beta1 import api_pb2, api_pb2_grpc

R = RESOURCE_ENI_IP


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def fmt_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):.3f} ms  p99 {pct(ms, 99):.3f} ms  max {max(ms):.3f} ms  "
        f"mean {statistics.fmean(ms):.3f} ms  (n={len(ms)})"
    )


def bench_allocate(plugin_dir: str, n: int) -> list[float]:
    with grpc.insecure_channel(f"unix://{plugin_dir}/tke-eni-ip.sock") as ch:
        stub = api_pb2_grpc.DevicePluginStub(ch)
        out = []
        for i in range(n + 50):
            req = api_pb2.AllocateRequest(
                container_requests=[
                    api_pb2.ContainerAllocateRequest(devices_ids=[f"eni-ip-{i % 95:03d}"])
                ]
            )
            t0 = time.perf_counter()
            resp = stub.Allocate(req, timeout=10)
            dt = time.perf_counter() - t0
            assert len(resp.container_responses) == 1
            if i >= 50:  # warm-up excluded
                out.append(dt)
        return out


def bench_capacity_change(
    kubelet: KubeletStandin, manager: DevicePluginManager, n: int
) -> list[float]:
    out = []
    for i in range(n):
        healthy = 40 + (i % 2) * 10  # alternate 40 / 50 usable IPs
        seen = len(kubelet.timeline)
        t0 = time.monotonic()
        manager.feed.set_usable_ips(healthy)
        ok = kubelet.wait_for(
            lambda h=healthy, s=seen: any(x.allocatable == h for x in kubelet.timeline[s:]),
            timeout=10,
        )
        assert ok, f"change {i} never reached ListAndWatch"
        sample = next(x for x in kubelet.timeline[seen:] if x.allocatable == healthy)
        out.append(sample.t - t0)
    manager.feed.set_usable_ips(None)
    return out


def bench_restarts(kubelet: KubeletStandin, n: int, capacity: int) -> list[float]:
    for _ in range(n):
        kubelet.restart()
        assert kubelet.wait_capacity(R, capacity, capacity, timeout=30)
    return kubelet.gaps(R)


def capacities_via_emulator(types: list[str]) -> dict[str, tuple[int, str]]:
    from vpcsim.testing import run_emulator

    for var in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SESSION_TOKEN"):
        os.environ.pop(var, None)
    os.environ["TKE_CLOUD_CREDENTIALS_FILE"] = "/nonexistent"
    out: dict[str, tuple[int, str]] = {}
    with run_emulator() as emu:
        for itype in types:
            iid = emu.add_instance("subnet-sim00003", itype)
            d = tempfile.mkdtemp(prefix="dpb-", dir="/tmp")
            try:
                with KubeletStandin(d) as kubelet:
                    m = DevicePluginManager(
                        Settings(
                            device_plugin_dir=d,
                            metadata_url=emu.metadata_url(iid),
                            cloud_endpoint=emu.url,
                            metrics_bind_address="",
                        )
                    )
                    m.start()
                    try:
                        kubelet.wait_for(lambda k=kubelet: k.capacity(R) > 0, timeout=30)
                        lim = m.limits.limits
                        out[itype] = (kubelet.capacity(R), str(lim))
                    finally:
                        m.stop()
            finally:
                shutil.rmtree(d, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--allocs", type=int, default=2000)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=20)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    d = tempfile.mkdtemp(prefix="dpb-", dir="/tmp")
    try:
        kubelet = KubeletStandin(d).start()
        manager = DevicePluginManager(
            Settings(
                device_plugin_dir=d,
                instance_id="ins-bench",
                instance_type="SA2.2XLARGE16",
                limits_source="table",
                metrics_bind_address="",
            )
        )
        manager.start()
        try:
            assert kubelet.wait_capacity(R, 95, 95, timeout=30)
            alloc = bench_allocate(d, args.allocs)
            print(
                f"Allocate round trip (1 container, 1 device): {fmt_ms(alloc)}  target p99 ≤ 2 ms"
            )
            change = bench_capacity_change(kubelet, manager, args.changes)
            print(f"capacity change → ListAndWatch received:   {fmt_ms(change)}  target ≤ 100 ms")
            gaps = bench_restarts(kubelet, args.restarts, 95)
            print(f"kubelet restart → capacity back:            {fmt_ms(gaps)}  bound 1 s")
        finally:
            manager.stop()
            kubelet.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    types = ["S5.LARGE8", "SA2.MEDIUM4", "SA2.2XLARGE16", "M5.4XLARGE64", "ZZ9.LARGE8"]
    print("capacity per instance type (metadata → DescribeNetworkInterfaceLimit on the emulator):")
    from core.limits import limits_for_type

    for itype, (cap, lim) in capacities_via_emulator(types).items():
        table = limits_for_type(itype)
        print(
            f"  {itype:<14} {cap:>4}   {lim}   (built-in table: {table.enis} × "
            f"{table.ips_per_eni} → {table.max_pods}, {table.source})"
        )


if __name__ == "__main__":
    main()
