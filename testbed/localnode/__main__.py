"""Start a control plane and real local nodes, run a pod, print the timings, clean up.

    python -m localnode [--nodes 2] [--pods 3] [--keep SECONDS]

Figures printed: control plane start, per node runtime (namespaces + containerd +
images) and kubelet start -> Ready, pod create -> Running (ptp + host-local CNI,
image ``nginx`` through the node's registry mirror). Bounded: every wait has a limit.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from localnode import netns
from localnode.kubeapi import api_request
from localnode.node import Node

ZONES = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")


def _wait_running(node: Node, name: str, timeout: float = 120.0) -> float:
    assert node.control_plane is not None
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pod = api_request(node.control_plane.kubeconfig, node.control_plane.server,
                          f"/api/v1/namespaces/default/pods/{name}")
        if pod and pod["status"].get("phase") == "Running":
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"pod {name} not Running within {timeout:.0f}s")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localnode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=2, help="real nodes (default %(default)s)")
    p.add_argument("--pods", type=int, default=3, help="pods per node (default %(default)s)")
    p.add_argument("--keep", type=float, default=0.0,
                   help="seconds to keep everything running before clean-up")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from localcluster.controlplane import ControlPlane

    base = Path(tempfile.mkdtemp(prefix="tke-localnode-", dir="/var/lib"))
    t0 = time.monotonic()
    cp = ControlPlane(base / "cp", with_scheduler=True).start()
    print(f"control plane ready: {time.monotonic() - t0:.2f} s")
    nodes: list[Node] = []
    try:
        for i in range(args.nodes):
            name = f"node-{chr(ord('a') + i)}"
            node = Node(name, ZONES[i % len(ZONES)], cp, base / name,
                        node_ip=f"10.20.0.{11 + i}/24", pod_subnet=f"10.244.{i + 1}.0/24")
            nodes.append(node)
            node.start()
            tm = node.timings
            print(f"{name}: runtime {tm.containerd + tm.images:.2f} s (containerd "
                  f"{tm.containerd:.2f} s, images {tm.images:.2f} s); kubelet start -> Ready "
                  f"{tm.kubelet_to_ready:.2f} s; node start -> Ready {tm.total:.2f} s")
        for node in nodes:
            times = []
            for k in range(args.pods):
                name = f"{node.name}-web-{k}"
                api_request(cp.kubeconfig, cp.server, "/api/v1/namespaces/default/pods", "POST",
                            {"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": name, "namespace": "default"},
                             "spec": {"nodeSelector": {"kubernetes.io/hostname": node.name},
                                      "terminationGracePeriodSeconds": 1,
                                      "containers": [{"name": "web", "image": "nginx"}]}})
                times.append(_wait_running(node, name))
            print(f"{node.name}: pod create -> Running (one at a time, n={len(times)}): "
                  f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")
        if args.keep:
            print(f"kubeconfig {cp.kubeconfig}; keeping for {args.keep:.0f} s")
            time.sleep(args.keep)
    finally:
        t = time.monotonic()
        problems = [p for node in reversed(nodes) for p in node.stop()]
        netns.delete("tke-fabric")
        cp.stop()
        print(f"clean-up: {time.monotonic() - t:.2f} s; problems: {problems or 'none'}")
        shutil.rmtree(base, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
