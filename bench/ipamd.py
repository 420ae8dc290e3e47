"""ipamd benchmark: prints figures (not a test).

    python -m bench.ipamd [--only static,refill,churn,rss] [--latency-ms 50] ...

Runs a real local control plane (etcd + kube-apiserver), the cloud emulator
with ``--latency-ms`` added to every API call, and ``tke-eni-ipamd`` as a
real process (leader election on). The bench plays the node agent (status
writes of the VpcIP contract in core/models.py).

* static: pod bound → its static IP usable on another node of the zone
  (old pod deleted + CNI DEL, new pod created → VpcIP reserved for the new
  UID on the new node's ENI), p50/p99 over ``--moves``;
* refill: ``--refill-nodes`` nodes join at once with ``--min-prebind`` 20:
  warm IPs per second until every pool is full (ENI create+attach included);
* churn: ``--nodes`` nodes, pods started at ``--rate``/s for ``--seconds``
  from the warm pools (each lives ``--lifetime`` s): achieved starts/s and
  cloud calls per pod start (all emulator calls in the window, task polls
  included);
* rss: ipamd's in-memory state for ``--rss-nodes`` nodes / ``--rss-ips`` IPs
  built in a fresh interpreter from synthetic API objects through ipamd's
  own summaries, indexes and handlers (the informer path minus HTTP), then
  VmRSS;
* rss-real (only with ``--only rss-real``): a real standby ipamd process
  over ``--real-nodes`` Nodes / ``--real-ips`` VpcIPs created in the
  apiserver, VmRSS and VmHWM once synced, next to the synthetic figure at the
  same scale.

Targets (DESIGN.md): static p50 ≤ 1 s; ≥ 100 pod starts/s; ≤ 0.2 calls per
start; RSS ≤ 300 MB."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ipamd_cluster import BenchKube, FastAgent, wait_for  # noqa: E402
from harness.ipamd_process import IpamdProcess  # noqa: E402
from harness.ipamd_world import NODE_SUBNET3, POD_SUBNET3, SPEC  # noqa: E402
from ipamd.kube import paths  # noqa: E402

if TYPE_CHECKING:
    from vpcsim.testing import EmulatorHandle


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def calls_total(emu: EmulatorHandle) -> int:
    return sum(int(v) for v in emu.admin("GET", "/_admin/calls").values())


def calls_by_action(emu: EmulatorHandle) -> dict[str, int]:
    return {str(k): int(v) for k, v in emu.admin("GET", "/_admin/calls").items()}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def start_ipamd(
    emu: EmulatorHandle, kube: BenchKube, workdir: Path, name: str, *extra: str
) -> IpamdProcess:
    proc = IpamdProcess(
        emu,
        kube.kubeconfig,
        workdir / f"{name}.log",
        "--cloud-rate-fraction",
        "1.0",
        "--identity",
        name,
        "--log-level",
        "WARNING",
        *extra,
    )
    # the bench's own figures: default reconcile/refresh periods, not the tests' short ones
    for flag, value in (
        ("--reconcile-interval", "60s"),
        ("--subnet-refresh-interval", "30s"),
        ("--trim-interval", "2m"),
        ("--cloud-task-poll", "0.05"),
        ("--cloud-backoff-base", "0.1"),
        ("--cloud-backoff-max", "5"),
        ("--ip-cooldown", "30s"),
    ):
        i = proc.argv.index(flag)
        proc.argv[i + 1] = value
    return proc.start()


def add_nodes(kube: BenchKube, emu: EmulatorHandle, n: int, prefix: str) -> list[str]:
    names = []
    for i in range(n):
        ins = emu.add_instance(NODE_SUBNET3, "S5.LARGE8")
        name = f"{prefix}{i}"
        kube.add_node(name, ins, "ap-guangzhou-3")
        names.append(name)
    return names


# --- static IP move --------------------------------------------------------------
def bench_static(
    kube: BenchKube, emu: EmulatorHandle, workdir: Path, moves: int
) -> dict[str, Any]:
    nodes = add_nodes(kube, emu, 2, "s")
    proc = start_ipamd(emu, kube, workdir, "ipamd-static")
    agent = FastAgent(kube)
    agent.inf.start(agent.stop)
    try:
        for n in nodes:
            wait_for(f"pool of {n}", lambda n=n: len(kube.vpcips(n)) >= 5, 120)
        pod = kube.add_pod("web-0", nodes[0])
        rec = wait_for(
            "first IP",
            lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], nodes[0]),
            60,
        )
        ip = rec.ip
        agent.use(ip, pod)
        times = []
        for i in range(moves):
            dest = nodes[(i + 1) % 2]
            kube.delete_pod("web-0")
            agent.free_static(ip)
            wait_for(
                "old pod gone",
                lambda: kube.api.get_or_none(paths.pod("default", "web-0")) is None,
                30,
                0.01,
            )
            t0 = time.monotonic()
            pod = kube.add_pod("web-0", dest)
            uid = pod["metadata"]["uid"]
            rec = wait_for(
                "moved",
                lambda u=uid, d=dest: agent.static_ready("default/web-0", u, d),
                60,
                0.005,
            )
            times.append(time.monotonic() - t0)
            assert rec.ip == ip
            agent.use(ip, pod)
    finally:
        agent.stop.set()
        proc.stop()
    return {
        "moves": moves,
        "p50_s": round(pct(times, 50), 3),
        "p99_s": round(pct(times, 99), 3),
        "max_s": round(max(times), 3),
    }


# --- warm-pool refill ---------------------------------------------------------------
def bench_refill(
    kube: BenchKube, emu: EmulatorHandle, workdir: Path, nodes: int, per_node: int
) -> dict[str, Any]:
    proc = start_ipamd(
        emu,
        kube,
        workdir,
        "ipamd-refill",
        "--min-prebind",
        str(per_node),
        "--max-prebind",
        str(per_node),
    )
    try:
        wait_for(
            "ipamd leads",
            lambda: kube.api.get_or_none(paths.lease("kube-system", "tke-eni-ipamd")),
            60,
        )
        time.sleep(1.0)
        c0 = calls_total(emu)
        t0 = time.monotonic()
        names = add_nodes(kube, emu, nodes, "r")
        want = nodes * per_node
        wait_for(
            "pools full",
            lambda: len([o for o in kube.vpcips() if o["spec"]["nodeName"] in names]) >= want,
            300,
            0.2,
        )
        dt = time.monotonic() - t0
        calls = calls_total(emu) - c0
    finally:
        proc.stop()
    return {
        "nodes": nodes,
        "ips": want,
        "seconds": round(dt, 2),
        "ips_per_s": round(want / dt, 1),
        "cloud_calls": calls,
    }


# --- steady churn (FastAgent: bench/ipamd_cluster.py) ------------------------------
def bench_churn(
    kube: BenchKube,
    emu: EmulatorHandle,
    workdir: Path,
    nodes: int,
    rate: float,
    seconds: float,
    lifetime: float,
    warmup: float,
) -> dict[str, Any]:
    names = add_nodes(kube, emu, nodes, "c")
    proc = start_ipamd(emu, kube, workdir, "ipamd-churn")
    agent = FastAgent(kube)
    agent.inf.start(agent.stop)
    try:
        wait_for("all pools", lambda: all(len(agent.free[n]) >= 5 for n in names), 300, 0.5)
        rng = random.Random(3)
        starts = 0
        waits = 0
        pool = ThreadPoolExecutor(24)
        stopper = ThreadPoolExecutor(8)  # stops never queue behind starts waiting for an IP
        stop_at: list[tuple[float, str]] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            nonlocal starts, waits
            node = rng.choice(names)
            for _ in range(200):
                ip = agent.start(node, f"uid-{i}")
                if ip is not None:
                    with lock:
                        starts += 1
                        stop_at.append((time.monotonic() + lifetime, ip))
                    return
                with lock:
                    waits += 1
                time.sleep(0.01)

        c0 = calls_total(emu)
        t0 = time.monotonic()
        i = 0
        measuring = warmup <= 0
        if measuring:
            print(f"churn: measuring {seconds:.0f}s", flush=True)
        while True:
            if not measuring and time.monotonic() - t0 >= warmup:
                # the warm pools have grown to the churn's peak use: measure from here
                with lock:
                    starts = waits = 0
                c0 = calls_total(emu)
                by0 = calls_by_action(emu)
                t0 = time.monotonic()
                i = 0
                measuring = True
            if measuring and time.monotonic() - t0 >= seconds:
                break
            target = int((time.monotonic() - t0) * rate)
            while i < target:
                pool.submit(one, i)
                i += 1
            now = time.monotonic()
            with lock:
                due = [x for x in stop_at if x[0] <= now]
                stop_at[:] = [x for x in stop_at if x[0] > now]
            for _, ip in due:
                stopper.submit(agent.stop_pod, ip)
            time.sleep(0.005)
        dt = time.monotonic() - t0
        calls = calls_total(emu) - c0
        by_action = delta(calls_by_action(emu), by0) if warmup > 0 else {}
        pool.shutdown(wait=True)
        stopper.shutdown(wait=True)
    finally:
        agent.stop.set()
        proc.stop()
    return {
        "nodes": nodes,
        "offered_per_s": rate,
        "warmup_s": warmup,
        "seconds": round(dt, 1),
        "starts": starts,
        "starts_per_s": round(starts / dt, 1),
        "waits_for_warm_ip": waits,
        "cloud_calls": calls,
        "calls_per_start": round(calls / max(1, starts), 4),
        "calls_by_action": by_action,
    }


# --- RSS ---------------------------------------------------------------------------------
def rss_child(nodes: int, ips: int) -> None:
    """In a fresh interpreter: ipamd's state for ``nodes``/``ips`` built through its
    own summaries, informer caches, indexes and handlers; prints JSON with VmRSS."""
    import gc
    import uuid

    from ipamd.app import App  # noqa: F401 - everything ipamd imports
    from ipamd.kube.informer import Informer
    from ipamd.rules.records import (
        claim_from_obj,
        eni_from_obj,
        ip_from_obj,
        node_from_obj,
        pod_from_obj,
    )
    from ipamd.state import ClusterState
    from ipamd.workqueue import WorkQueue

    q = WorkQueue()
    st = ClusterState(q)
    none: Any = None
    st.nodes = Informer(none, "", "nodes", node_from_obj, st.on_node)
    st.pods = Informer(none, "", "pods", pod_from_obj, st.on_pod)
    st.ips = Informer(none, "", "vpcips", ip_from_obj, st.on_ip)
    st.enis = Informer(none, "", "vpcenis", eni_from_obj, st.on_eni)
    st.claims = Informer(none, "", "claims", claim_from_obj, st.on_claim)
    counter = [1]

    def meta(name: str, ns: str = "", **kw: Any) -> dict[str, Any]:
        counter[0] += 1
        d: dict[str, Any] = {
            "name": name,
            "resourceVersion": str(counter[0]),
            "uid": str(uuid.uuid4()),
        }
        if ns:
            d["namespace"] = ns
        d.update(kw)
        return d

    zone = "ap-guangzhou-3"
    subnet = "subnet-aaaaaaaa"
    per_node = max(1, ips // nodes)
    enis_per_node = 2
    n_ip = 0
    for n in range(nodes):
        node = f"node-{n:05d}"
        labels = {
            "topology.kubernetes.io/zone": zone,
            "node.kubernetes.io/instance-type": "S5.LARGE8",
        }
        st.nodes.apply(
            {
                "metadata": meta(node, labels=labels),
                "spec": {"providerID": f"qcloud:///800003/ins-{n:08d}"},
            }
        )
        for e in range(enis_per_node):
            st.enis.apply(
                {
                    "metadata": meta(f"eni-{n:05d}{e:03d}"),
                    "spec": {
                        "nodeName": node,
                        "instanceId": f"ins-{n:08d}",
                        "subnetId": subnet,
                        "zone": zone,
                    },
                    "status": {
                        "phase": "Attached",
                        "mac": "20:90:6f:00:00:01",
                        "primaryIp": "10.1.0.1",
                        "deviceIndex": e + 1,
                        "ipCapacity": 20,
                    },
                }
            )
        for k in range(per_node):
            a = f"10.{(n_ip >> 16) & 255}.{(n_ip >> 8) & 255}.{n_ip & 255}"
            n_ip += 1
            spec = {
                "nodeName": node,
                "eniId": f"eni-{n:05d}{k % enis_per_node:03d}",
                "subnetId": subnet,
                "zone": zone,
                "state": "Assigned",
            }
            status = {
                "phase": "InUse" if k % 3 else "Free",
                "podUid": str(uuid.uuid4()),
                "podName": f"p-{n}-{k}",
                "podNamespace": "default",
                "updated": "2026-01-01T00:00:00Z",
            }
            if k % 10 == 0:  # one in ten is a static IP: a claim and a pod summary
                name = f"web-{n}-{k}"
                spec["claim"] = f"default/{name}"
                spec["reservedPodUid"] = status["podUid"]
                st.claims.apply(
                    {
                        "metadata": meta(
                            name,
                            "default",
                            finalizers=["networking.tke.cloud.tencent.com/release-ip"],
                        ),
                        "spec": {"policy": "Never"},
                        "status": {
                            "phase": "Bound",
                            "ip": a,
                            "subnetId": subnet,
                            "zone": zone,
                            "nodeName": node,
                            "podUid": status["podUid"],
                            "lastSeen": "2026-01-01T00:00:00Z",
                        },
                    }
                )
                ann = {"tke.cloud.tencent.com/vpc-ip-claim-delete-policy": "Never"}
                st.pods.apply(
                    {
                        "metadata": meta(name, "default", annotations=ann),
                        "spec": {"nodeName": node},
                        "status": {"phase": "Running"},
                    }
                )
            st.ips.apply({"metadata": meta(a), "spec": spec, "status": status})
    while q.get(0) is not None:  # the keys the handlers queued (a leader would process them)
        pass
    gc.collect()
    rss = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    print(
        json.dumps(
            {
                "nodes": len(st.nodes),
                "ips": len(st.ips),
                "enis": len(st.enis),
                "claims": len(st.claims),
                "rss_mb": round(rss, 1),
            }
        )
    )


def bench_rss(nodes: int, ips: int) -> dict[str, Any]:
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import ipamd.app, json\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])",
        ],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        check=True,
    )
    out = subprocess.run(
        [sys.executable, "-m", "bench.ipamd", "--rss-child", f"{nodes},{ips}"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        check=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    data["rss_mb_after_imports_only"] = round(int(base.stdout.strip()) / 1024, 1)
    return data


POD_SUBNET = "subnet-sim00033"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def bench_rss_real(
    kube: BenchKube, emu: EmulatorHandle, workdir: Path, nodes: int, ips: int
) -> dict[str, Any]:
    """A real ipamd process (standby: the Lease is held by someone else, so it only
    lists and watches) over ``nodes`` Nodes, 2 VpcENIs each and ``ips`` VpcIPs
    created in the apiserver; VmRSS and VmHWM once its caches are synced."""
    import urllib.request

    kube.api.create(
        paths.leases("kube-system"),
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "tke-eni-ipamd", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "someone-else",
                "leaseDurationSeconds": 3600,
                "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            },
        },
    )
    per_node = max(1, ips // nodes)
    jobs: list[tuple[str, dict[str, Any]]] = []
    n_ip = 0
    for n in range(nodes):
        node = f"bn-{n:05d}"
        jobs.append(
            (
                paths.NODES,
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node,
                        "labels": {"topology.kubernetes.io/zone": "ap-guangzhou-3"},
                    },
                    "spec": {"providerID": f"qcloud:///800003/ins-b{n:07d}"},
                },
            )
        )
        for e in range(2):
            jobs.append(
                (
                    paths.VPC_ENIS,
                    {
                        "apiVersion": "networking.tke.cloud.tencent.com/v1",
                        "kind": "VpcENI",
                        "metadata": {
                            "name": f"eni-b{n:05d}{e:02d}",
                            "labels": {"tke.cloud.tencent.com/node": node},
                        },
                        "spec": {
                            "nodeName": node,
                            "instanceId": f"ins-b{n:07d}",
                            "subnetId": POD_SUBNET,
                            "zone": "ap-guangzhou-3",
                        },
                    },
                )
            )
        for k in range(per_node):
            a = f"10.{100 + ((n_ip >> 16) & 127)}.{(n_ip >> 8) & 255}.{n_ip & 255}"
            n_ip += 1
            jobs.append(
                (
                    paths.VPC_IPS,
                    {
                        "apiVersion": "networking.tke.cloud.tencent.com/v1",
                        "kind": "VpcIP",
                        "metadata": {"name": a, "labels": {"tke.cloud.tencent.com/node": node}},
                        "spec": {
                            "nodeName": node,
                            "eniId": f"eni-b{n:05d}{k % 2:02d}",
                            "subnetId": POD_SUBNET,
                            "zone": "ap-guangzhou-3",
                            "state": "Assigned",
                        },
                    },
                )
            )
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda j: kube.api.create(j[0], j[1]), jobs))
    create_s = time.monotonic() - t0
    health = _free_port()
    proc = start_ipamd(emu, kube, workdir, "ipamd-rss", "--health-address", f"127.0.0.1:{health}")
    try:

        def synced() -> bool:
            url = f"http://127.0.0.1:{health}/readyz"
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(url, timeout=2) as r,
            ):
                return bool(json.loads(r.read()).get("synced"))
            return False

        t1 = time.monotonic()
        wait_for("ipamd caches synced", synced, 300, 0.2)
        sync_s = time.monotonic() - t1
        time.sleep(2.0)
        assert proc.proc is not None
        rss = _status_kb(proc.proc.pid, "VmRSS") / 1024
        hwm = _status_kb(proc.proc.pid, "VmHWM") / 1024
    finally:
        proc.stop()
        for base in (paths.VPC_IPS, paths.VPC_ENIS, paths.NODES):
            kube.api._call("DELETE", base, timeout=300)  # deletecollection
        kube.api.delete(paths.lease("kube-system", "tke-eni-ipamd"))
    return {
        "nodes": nodes,
        "ips": per_node * nodes,
        "enis": 2 * nodes,
        "created_in_s": round(create_s, 1),
        "synced_in_s": round(sync_s, 1),
        "rss_mb": round(rss, 1),
        "peak_rss_mb": round(hwm, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", default="static,refill,churn,rss")
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--refill-nodes", type=int, default=10)
    p.add_argument("--per-node", type=int, default=20)
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--lifetime", type=float, default=2.0)
    p.add_argument("--warmup", type=float, default=40.0)
    p.add_argument("--real-nodes", type=int, default=500)
    p.add_argument("--real-ips", type=int, default=15000)
    p.add_argument("--rss-nodes", type=int, default=5000)
    p.add_argument("--rss-ips", type=int, default=150000)
    p.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child:
        n, i = (int(x) for x in a.rss_child.split(","))
        rss_child(n, i)
        return 0
    from localcluster.controlplane import ControlPlane
    from vpcsim.testing import run_emulator

    only = set(a.only.split(","))
    results: dict[str, Any] = {}
    if "rss" in only:
        results["rss"] = bench_rss(a.rss_nodes, a.rss_ips)
        print("rss:", json.dumps(results["rss"]), flush=True)
    k8s = only & {"static", "refill", "churn", "rss-real"}
    if k8s:
        workdir = Path(tempfile.mkdtemp(prefix="tke-bench-ipamd-"))
        cp = ControlPlane(workdir / "cp")
        try:
            cp.start()
            kube = BenchKube(cp.kubeconfig)
            kube.install_crds()
            for what in ("static", "refill", "churn", "rss-real"):
                if what not in only:
                    continue
                kube.wipe()
                kube.set_subnets(POD_SUBNET3)
                spec = json.loads(json.dumps(SPEC))
                with run_emulator(spec, {"latency_ms": a.latency_ms}) as emu:
                    if what == "static":
                        results[what] = bench_static(kube, emu, workdir, a.moves)
                    elif what == "rss-real":
                        results[what] = bench_rss_real(kube, emu, workdir, a.real_nodes, a.real_ips)
                        synthetic = bench_rss(a.real_nodes, a.real_ips)
                        results[what]["synthetic_rss_mb_same_scale"] = synthetic["rss_mb"]
                    elif what == "refill":
                        results[what] = bench_refill(kube, emu, workdir, a.refill_nodes, a.per_node)
                    else:
                        results[what] = bench_churn(
                            kube, emu, workdir, a.nodes, a.rate, a.seconds, a.lifetime, a.warmup
                        )
                print(
                    f"{what} (cloud latency {a.latency_ms:.0f} ms):",
                    json.dumps(results[what]),
                    flush=True,
                )
                kube.wipe()
        finally:
            cp.stop()
            if os.environ.get("BENCH_KEEP"):
                print("kept", workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
