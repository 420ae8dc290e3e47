"""bench.extender's per-process CPU accounting for part 2 (where a scheduler
run's CPU went, per pod bound)."""

from __future__ import annotations

import os

from bench.extender import cpu_per_pod, cpu_seconds


def test_cpu_per_pod_is_ms_per_pod_bound_in_between_busiest_first() -> None:
    first = (10, {"kube-scheduler": 1.0, "extender": 2.0, "etcd": 0.5})
    last = (110, {"kube-scheduler": 1.2, "extender": 2.1, "etcd": 0.5, "gone": 9.0})
    line = cpu_per_pod(first, last)
    # 100 pods: 0.2 s → 2 ms/pod, 0.1 s → 1 ms/pod; a process idle in between and one
    # seen only at the end are left out
    assert line == "CPU ms per pod (100 pods): kube-scheduler 2.00, extender 1.00; total 3.00"


def test_cpu_seconds_reads_this_process_and_skips_the_missing() -> None:
    got = cpu_seconds({"me": os.getpid(), "none": 2**22 + 12345})
    assert set(got) == {"me"}
    assert got["me"] > 0
