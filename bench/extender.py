"""Scheduler extender benchmark (prints figures; not a test).

    python -m bench.extender                 # everything (< 2 min on 2 cores)
    python -m bench.extender --no-scheduler  # HTTP part only
    python -m bench.extender --sizes 500,5000 --codec stdlib

Part 1, HTTP: the extender (its cheroot server, 4 threads, --insecure-http) in
a forked server process with a synthetic cluster in its cache: N nodes in three zones (one without a
subnet, one with an exhausted subnet), 3–6 VpcIPs and one VpcENI per node.
The client (this process, keep-alive HTTP on loopback) sends what a real
kube-scheduler sends: ExtenderArgs with all N node names (nodeCacheCapable
true) or all N Node objects (false; kwok-like Nodes, ~2.9 KB each). Latency is
the client's round trip (send, parse, decide, encode, receive); "decide" is
the pure rule evaluation alone, in-process; "cpu" is the CPU time (thread
time) of the whole handler (parse, decide, encode, log) per request, measured
in-process through Flask's test client; "srv cpu" is the server process's CPU
time (all threads, /proc) over the timed requests divided by their count:
the handler plus the HTTP server's own work (reading the body off the socket,
writing the reply) — what a request costs the server, largely independent of
what else runs on the machine. Then requests/s with 4 concurrent
clients (NodeNames, 5,000 nodes): server process + client process on the
machine's two cores.

Part 2, real scheduler: etcd + kube-apiserver + kwok (localcluster), 200 kwok
nodes in two zones, the extender as a process (the real CLI, watching the
API), kube-scheduler started by this script with the shipped
deploy/scheduler-extender/kube-scheduler-config.yaml (filter + prioritize,
nodeCacheCapable, managedResources eni-ip, mutual TLS with certificates from
localcluster.extender_pki) and client QPS raised. 300 pods
are created while no scheduler runs, then the scheduler starts and the bench
records when each pod gets its node (a watch); rate = (pods − 1) /
(last bind − first bind). Three kinds of run, same run, fresh pods each:
"without extender": pods without eni-ip, which never reach the extender
(managedResources) — the issue's baseline; "no extender": pods requesting
eni-ip under the same configuration minus its ``extenders`` entry (what the
extender alone costs: kube-scheduler still counts the extended resource);
"with extender": pods requesting eni-ip, shipped configuration. --rounds (3)
rounds of the three, the order reversed every other round. Printed: every run
with the load average (and, for the "with" runs, how many TCP connections
kube-scheduler holds to the extender half-way through: 1 = one kept-alive
connection) and the CPU each process used per pod bound between the first
and the last bind seen (``/proc/<pid>/stat``: on two cores every run is
CPU-bound, so this is where the throughput goes); the medians with
[min–max]; the median of the rounds' ratios, with ÷ without and with ÷ no
extender.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.models import IP_PHASE_COOLDOWN, IP_PHASE_IN_USE
from localcluster import objects as ex
from scheduler_extender import decide
from scheduler_extender.pod import pod_facts
from scheduler_extender.store import (
    KIND_CLAIMS,
    KIND_CONFIGMAPS,
    KIND_NODES,
    KIND_PODS,
    KIND_VPCENIS,
    KIND_VPCIPS,
    Store,
)

ZONES = ("ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-6")  # -6: no subnet
SUBNET_OF = {"ap-guangzhou-3": "subnet-a", "ap-guangzhou-4": "subnet-b"}


# --- part 1: HTTP latency ----------------------------------------------------
def node_name(i: int) -> str:
    return f"node-{i:05d}"


def cluster_objects(n: int, *, full: bool) -> dict[str, list[dict[str, Any]]]:
    nodes, ips, enis = [], [], []
    for i in range(n):
        name, zone = node_name(i), ZONES[i % 3]
        nodes.append(ex.node(name, zone, 30, full=full))
        subnet = SUBNET_OF.get(zone, "subnet-x")
        enis.append(ex.vpc_eni(f"eni-{i:08x}", name, subnet))
        base = f"10.{i // 250 % 250}.{i % 250}"
        ips.append(ex.vpc_ip(f"{base}.1", name, subnet=subnet, phase=IP_PHASE_IN_USE))
        ips.append(ex.vpc_ip(f"{base}.2", name, subnet=subnet, phase=IP_PHASE_IN_USE))
        ips.append(ex.vpc_ip(f"{base}.3", name, subnet=subnet, phase=IP_PHASE_COOLDOWN))
        if i % 2:
            for j in range(4, 7):
                ips.append(ex.vpc_ip(f"{base}.{j}", name, subnet=subnet))
    maps = [
        ex.ipamd_configmap("subnet-a", "subnet-b"),
        ex.status_configmap(
            ex.subnet("subnet-a", ZONES[0], available=500, total=4093),
            ex.subnet("subnet-b", ZONES[1], available=0, total=4093),
        ),
    ]
    return {
        KIND_NODES: nodes,
        KIND_VPCIPS: ips,
        KIND_VPCENIS: enis,
        KIND_CLAIMS: [],
        KIND_CONFIGMAPS: maps,
        KIND_PODS: [],
    }


def build_store(n: int) -> Store:
    store = Store()
    for kind, items in cluster_objects(n, full=False).items():
        store.replace(kind, items)
    return store


def _serve(n: int, codec: str, conn: Any) -> None:
    """Server process: cache of n nodes, its server on a free port."""
    import logging

    from kit import logs
    from scheduler_extender.app import create_app
    from scheduler_extender.cli import verbs_listener
    from scheduler_extender.config import Settings

    # the CLI's logging (one JSON line per filter call), written to /dev/null
    logs.setup("info", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as the process)
    store = build_store(n)
    gc.collect()
    gc.freeze()  # as the CLI does once its caches synced
    # plain HTTP here: part 1 measures the extender's work (part 2 runs over mutual TLS)
    settings = Settings(host="127.0.0.1", port=0, json_codec=codec, threads=4, insecure_http=True)
    server = verbs_listener(create_app(store, settings), settings)
    conn.send(server.port)
    server.serve()


class Server:
    def __init__(self, n: int, codec: str) -> None:
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(n, codec, child), daemon=True)
        self.proc.start()
        if not parent.poll(120):
            raise RuntimeError("bench server did not start")
        self.port: int = parent.recv()

    def cpu_seconds(self) -> float:
        """The server process's CPU time (user + system, all its threads) so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


def post(conn: http.client.HTTPConnection, path: str, body: bytes) -> bytes:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {data[:200]!r}")
    return data


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(
    fn: Callable[[], object],
    count: int,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(count):
        t = clock()
        fn()
        out.append((clock() - t) * 1000)
    return out


def cpu_per_request(
    n: int, codec: str, bodies: dict[str, bytes], count: int = 30
) -> dict[tuple[str, str], tuple[float, float]]:
    """CPU time of the whole WSGI handler (parse, decide, encode, log), in
    this process through Flask's test client, gc frozen as in the server:
    what one request costs the server, independent of other load."""
    import logging

    from kit import logs
    from scheduler_extender.app import create_app
    from scheduler_extender.config import Settings

    logs.setup("info", "json")
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115
    store = build_store(n)
    gc.collect()
    gc.freeze()
    client = create_app(store, Settings(json_codec=codec)).test_client()
    out = {}
    for mode, body in bodies.items():
        for verb in ("filter", "prioritize"):
            k = count if mode == "NodeNames" or n <= 5000 else 10
            samples = timed(
                lambda b=body, v=verb: client.post(f"/{v}", data=b), k, clock=time.thread_time
            )
            out[mode, verb] = (percentile(samples, 0.5), percentile(samples, 0.99))
    gc.unfreeze()
    logging.getLogger().handlers.clear()
    return out


def latency_part(sizes: list[int], codec: str) -> None:
    print(f"== part 1: HTTP latency (codec {codec}; client round trip, ms) ==")
    print(
        f"{'nodes':>6} {'mode':<9} {'verb':<10} {'body MB':>7} {'n':>4} "
        f"{'p50':>8} {'p99':>8} {'decide p50':>10} {'cpu p50':>8} {'cpu p99':>8} {'srv cpu':>8}"
    )
    for n in sizes:
        measure_size(n, codec, with_throughput=n == 5000 or (n == sizes[-1] and 5000 not in sizes))


def measure_size(n: int, codec: str, *, with_throughput: bool) -> None:
    pod = ex.pod("web-0")
    facts = pod_facts(pod)
    names = [node_name(i) for i in range(n)]
    snap = build_store(n).snapshot()
    gc.collect()
    gc.freeze()  # as the server does: the cache is not rescanned by the collector
    decide_ms = statistics.median(
        timed(lambda: decide.filter_nodes(facts, names, snap.nodes, snap), 20)
    )
    gc.unfreeze()
    bodies = {
        "NodeNames": ex.filter_args(pod, names),
        "Nodes": ex.filter_args(pod, nodes=cluster_objects(n, full=True)[KIND_NODES]),
    }
    cpu = cpu_per_request(n, codec, bodies)
    server = Server(n, codec)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        reply = json.loads(post(conn, "/filter", bodies["NodeNames"]))
        for body in bodies.values():  # warm both modes (first large buffers, caches)
            for _ in range(2):
                post(conn, "/filter", body)
                post(conn, "/prioritize", body)
        for mode, body in bodies.items():
            per_request = 0.004 * n / 5000 if mode == "NodeNames" else 0.06 * n / 5000
            count = max(10, min(200, int(4.0 / max(per_request, 0.001))))
            for verb in ("filter", "prioritize"):
                path = f"/{verb}"
                cpu0 = server.cpu_seconds()
                samples = timed(lambda b=body, p=path: post(conn, p, b), count, warmup=0)
                server_ms = (server.cpu_seconds() - cpu0) / count * 1000
                print(
                    f"{n:>6} {mode:<9} {verb:<10} {len(body) / 1e6:>7.2f} {count:>4} "
                    f"{percentile(samples, 0.5):>8.2f} {percentile(samples, 0.99):>8.2f} "
                    f"{decide_ms if verb == 'filter' else float('nan'):>10.2f} "
                    f"{cpu[mode, verb][0]:>8.2f} {cpu[mode, verb][1]:>8.2f} {server_ms:>8.2f}"
                )
        print(
            f"{'':>6} (filter verdicts at {n}: {len(reply['NodeNames'])} passed, "
            f"{len(reply['FailedNodes'])} failed, "
            f"{len(reply['FailedAndUnresolvableNodes'])} unresolvable)"
        )
        if with_throughput:
            throughput(server.port, bodies["NodeNames"], n)
    finally:
        conn.close()
        server.stop()


def throughput(port: int, body: bytes, n: int, clients: int = 4, seconds: float = 5.0) -> None:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def run(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < stop:
            post(conn, "/filter", body)
            done[k] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - t
    print(
        f"{n:>6} NodeNames filter throughput: {sum(done) / elapsed:.0f} requests/s "
        f"({clients} concurrent clients, {elapsed:.1f} s, server 4 threads, 2 cores shared)"
    )


def cycle_part(n: int = 200, cycles: int = 1000) -> None:
    """What kube-scheduler's cycle costs the server, load-independent: filter then
    prioritize of n NodeNames on one kept-alive mutual-TLS connection, against the
    extender's own listener (verbs_listener) in this process; server CPU = process
    CPU time minus the client thread's."""
    from kit import logs
    from localcluster.extender_pki import make_extender_pki
    from scheduler_extender.app import create_app
    from scheduler_extender.cli import verbs_listener
    from scheduler_extender.config import Settings

    logs.setup("warning", "text")
    workdir = Path(tempfile.mkdtemp(prefix="tke-bench-extender-cycle-"))
    pki = make_extender_pki(workdir / "pki")
    store = build_store(n)
    gc.collect()
    gc.freeze()
    settings = Settings(
        host="127.0.0.1", port=0, threads=4, tls_cert_file=str(pki.server_cert),
        tls_key_file=str(pki.server_key), client_ca_file=str(pki.client_ca),
    )
    listener = verbs_listener(create_app(store, settings), settings).start()
    body = ex.filter_args(ex.pod("web-0"), [node_name(i) for i in range(n)])
    conn = http.client.HTTPSConnection(
        "127.0.0.1", listener.port, context=pki.client_context(), timeout=60
    )

    def cycle() -> None:
        post(conn, "/filter", body)
        post(conn, "/prioritize", body)

    try:
        for _ in range(50):
            cycle()
        client0, cpu0 = time.thread_time(), time.process_time()
        samples = timed(cycle, cycles, warmup=0)
        server_cpu = (time.process_time() - cpu0) - (time.thread_time() - client0)
    finally:
        conn.close()
        listener.stop()
        gc.unfreeze()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"== part 1b: pod cycle (filter + prioritize, {n} NodeNames, mutual TLS keep-alive, "
        f"{cycles} cycles) ==\n  round trip p50 {percentile(samples, 0.5):.3f} ms, "
        f"p99 {percentile(samples, 0.99):.3f} ms; server CPU {server_cpu / cycles * 1000:.3f} "
        "ms per cycle"
    )


# --- part 2: real scheduler ---------------------------------------------------
PLAIN, BARE, WITH = "plain", "bare", "eni"  # part 2's three kinds of run


def scheduler_part(pods: int, nodes_per_zone: int, rounds: int = 3) -> None:
    from kubernetes import client, watch

    from harness.extender import (
        ZONE_A,
        ZONE_B,
        ExtenderProcess,
        pod_manifest,
        shipped_scheduler_config,
        zone_nodes,
    )
    from harness.kubeobjects import apply_crds, put_configmap
    from localcluster import components
    from localcluster.binaries import k8s_binaries
    from localcluster.controlplane import ControlPlane
    from localcluster.extender_pki import make_extender_pki
    from localcluster.ports import free_ports
    from localcluster.process import ManagedProcess
    from localcluster.readiness import TLSClient, http_ok, wait_ready
    from localcluster.scheduler_config import complete_config

    print(f"== part 2: real kube-scheduler, {2 * nodes_per_zone} kwok nodes, {pods} pods ==")
    workdir = Path(tempfile.mkdtemp(prefix="tke-bench-extender-"))
    nodes = zone_nodes(ZONE_A, "a", nodes_per_zone, 30) + zone_nodes(
        ZONE_B, "b", nodes_per_zone, 30
    )
    cp = ControlPlane(workdir, with_kwok=True, kwok_nodes=nodes)
    extender: ExtenderProcess | None = None
    try:
        cp.start()
        api = cp.api_client()
        core = client.CoreV1Api(api)
        apply_crds(api)
        put_configmap(core, ex.ipamd_configmap("subnet-a", "subnet-b"))
        put_configmap(
            core,
            ex.status_configmap(
                ex.subnet("subnet-a", ZONE_A, 4000, 4093), ex.subnet("subnet-b", ZONE_B, 4000, 4093)
            ),
        )
        ext_port, sched_port = free_ports(2)
        pki = make_extender_pki(workdir / "extender-pki")
        extender = ExtenderProcess(
            cp.kubeconfig, ext_port, workdir / "extender.log", "--log-level", "warning", pki=pki
        )
        extender.wait_ready()
        config = complete_config(
            shipped_scheduler_config(
                extender.url, pki, clientConnection={"qps": 5000, "burst": 5000}
            ),
            cp.kubeconfig,
        )
        config_path = workdir / "bench-scheduler.yaml"
        config_path.write_text(json.dumps(config))
        # the same configuration without the extender: eni-ip pods scheduled by
        # kube-scheduler alone (NodeResourcesFit still counts the resource)
        bare = {k: v for k, v in config.items() if k != "extenders"}
        bare_path = workdir / "bench-scheduler-no-extender.yaml"
        bare_path.write_text(json.dumps(bare))
        bins = k8s_binaries()
        # (key, label, pods request eni-ip, configuration)
        runs = (
            (PLAIN, "without extender (no eni-ip)", False, config_path),
            (BARE, "no extender (eni-ip)", True, bare_path),
            (WITH, "with extender (eni-ip)", True, config_path),
        )
        results: dict[str, list[float]] = {PLAIN: [], BARE: [], WITH: []}
        for r in range(rounds):
            order = runs if r % 2 == 0 else runs[::-1]  # alternate: neither side always first
            for key, label, eni, path in order:
                prefix = f"{key}-r{r}"
                names = [f"{prefix}-{i}" for i in range(pods)]
                create_pods(core, [pod_manifest(n, eni_ip=eni) for n in names])
                bound: dict[str, float] = {}
                stop = threading.Event()
                version = core.list_namespaced_pod("default").metadata.resource_version
                watcher = threading.Thread(
                    target=watch_binds, args=(api, version, set(names), bound, stop)
                )
                watcher.start()
                proc = ManagedProcess.start(
                    f"kube-scheduler-{prefix}",
                    components.scheduler_argv(bins.kube_scheduler, path, cp.kubeconfig, sched_port),
                    workdir / f"kube-scheduler-{prefix}.log",
                    cwd=workdir,
                )
                try:
                    wait_ready(
                        proc,
                        lambda: http_ok(
                            f"https://127.0.0.1:{sched_port}/healthz", TLSClient(), expect="ok"
                        ),
                        60,
                        "kube-scheduler /healthz",
                    )
                    deadline = time.monotonic() + 120
                    conns: int | None = None
                    watched = {
                        **cp.pids(),
                        "kube-scheduler": proc.pid,
                        "extender": extender.proc.pid,
                    }
                    cpu_first: tuple[int, dict[str, float]] | None = None
                    while len(bound) < pods and time.monotonic() < deadline:
                        if cpu_first is None and bound:
                            cpu_first = (len(bound), cpu_seconds(watched))
                        if key == WITH and conns is None and len(bound) >= pods // 2:
                            conns = established(ext_port)
                        time.sleep(0.005)
                    cpu_last = (len(bound), cpu_seconds(watched))
                finally:
                    stop.set()
                    proc.stop()
                    watcher.join(10)
                if len(bound) < pods:
                    raise RuntimeError(f"{label}: only {len(bound)}/{pods} pods bound")
                times = sorted(bound.values())
                rate = (len(times) - 1) / (times[-1] - times[0])
                results[key].append(rate)
                print(
                    f"  round {r + 1}/{rounds} {label:<30} {rate:8.1f} pods/s  ({pods} pods "
                    f"bound in {times[-1] - times[0]:.2f} s; load average "
                    f"{os.getloadavg()[0]:.1f})"
                    + (f"; connections to the extender mid-run: {conns}" if key == WITH else ""),
                    flush=True,
                )
                if cpu_first is not None and cpu_last[0] > cpu_first[0]:
                    print("      " + cpu_per_pod(cpu_first, cpu_last), flush=True)
        print(
            f"  median of {rounds} round(s) [min–max]: "
            + ", ".join(
                f"{label.split(' (')[0]} {statistics.median(results[key]):.1f} pods/s "
                f"[{min(results[key]):.1f}–{max(results[key]):.1f}]"
                for key, label, _, _ in runs
            )
        )
        for base, what in ((PLAIN, "without (no eni-ip pods)"), (BARE, "no extender, same pods")):
            ratios = [w / b for w, b in zip(results[WITH], results[base], strict=True)]
            print(
                f"  ratio with ÷ {what}: {statistics.median(ratios):.2f} (median of the "
                f"rounds' ratios; each round: {', '.join(f'{x:.2f}' for x in ratios)})"
            )
        if extender is not None:
            requests = extender.metric("tke_eni_extender_requests_total", code="200", verb="filter")
            print(f"  extender filter calls: {requests:.0f}")
        _ = watch
        api.close()
    finally:
        if extender is not None:
            extender.stop()
        cp.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each named process so far (``/proc/<pid>/stat``)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_per_pod(
    first: tuple[int, dict[str, float]], last: tuple[int, dict[str, float]]
) -> str:
    """Where the CPU went between the first bind seen and the last: ms per pod bound
    in between, per process (busiest first), and their total."""
    pods = last[0] - first[0]
    used = {n: (last[1][n] - first[1][n]) * 1000 / pods for n in last[1] if n in first[1]}
    busy = sorted(used.items(), key=lambda kv: -kv[1])
    parts = ", ".join(f"{n} {ms:.2f}" for n, ms in busy if ms >= 0.005)
    return f"CPU ms per pod ({pods} pods): {parts}; total {sum(used.values()):.2f}"


def established(port: int) -> int | None:
    """TCP connections established to ``port`` on this machine (``ss``): how many
    connections kube-scheduler holds to the extender (1: one kept-alive connection)."""
    import subprocess

    done = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, check=False,
    )
    return len(done.stdout.splitlines()) if done.returncode == 0 else None


def create_pods(core: Any, manifests: list[dict[str, Any]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda m: core.create_namespaced_pod("default", m), manifests))


def watch_binds(
    api: Any, version: str, names: set[str], bound: dict[str, float], stop: threading.Event
) -> None:
    from kubernetes import client, watch

    core = client.CoreV1Api(api)
    w = watch.Watch()
    while not stop.is_set():
        with contextlib.suppress(Exception):
            for event in w.stream(
                core.list_namespaced_pod,
                "default",
                resource_version=version,
                timeout_seconds=2,
                _request_timeout=5,
            ):
                pod = event["object"]
                name, node = pod.metadata.name, pod.spec.node_name
                version = pod.metadata.resource_version
                if name in names and node and name not in bound:
                    bound[name] = time.monotonic()
                if stop.is_set() or len(bound) == len(names):
                    w.stop()
                    return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="500,5000,15000")
    parser.add_argument("--codec", default="auto", choices=["auto", "msgspec", "stdlib"])
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--nodes-per-zone", type=int, default=100)
    parser.add_argument(
        "--rounds", type=int, default=3, help="part 2: rounds of without + with (order alternating)"
    )
    args = parser.parse_args(argv)
    from scheduler_extender.wire import Codec

    codec = Codec(args.codec).name
    print(
        f"python {sys.version.split()[0]}, codec {codec}, cores {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    t = time.monotonic()
    if not args.no_http:
        latency_part([int(s) for s in args.sizes.split(",") if s], codec)
        cycle_part()
    if not args.no_scheduler:
        scheduler_part(args.pods, args.nodes_per_zone, args.rounds)
    print(f"bench done in {time.monotonic() - t:.0f} s (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
