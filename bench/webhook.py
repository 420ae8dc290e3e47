"""Admission webhook benchmark (prints figures; not a test).

    python -m bench.webhook                  # 50 creations/s, 2 x 15 s per side (~2 min)
    python -m bench.webhook --rate 50 --seconds 15 --rounds 2

A private etcd + kube-apiserver (localcluster), the webhook installed as in a
cluster (localrun.webhook: deploy/'s add-pod-eni-ip-limit-webhook on loopback,
the certs Job's command, the Deployment's container as a process, --eni-only,
so every pod is patched). The client sends pod creations (POST, small busybox
pods, keep-alive TLS connections from 8 threads) open-loop at --rate per
second, alternating rounds "without" (pods labelled
tke.cloud.tencent.com/eni-ip-webhook=skip: the objectSelector keeps the
apiserver from calling the webhook) and "with" (the apiserver calls the webhook
over TLS and applies its JSONPatch). Latency: the client's round trip of each
POST; added = with − without at the same percentile. Then the saturation rate:
8 clients as fast as they can for --seconds, each side. CPU: the machine's
busy time in each window and who used it (apiserver, etcd, webhook, this
bench) from /proc; the load average before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

TICK = os.sysconf("SC_CLK_TCK")
SKIP = {"tke.cloud.tencent.com/eni-ip-webhook": "skip"}
NS = "default"


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / TICK


def machine_busy() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / TICK


class CpuWindow:
    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = time.monotonic()
        self.start = self._sample()

    def _sample(self) -> dict[str, float]:
        out = {name: proc_cpu(pid) for name, pid in self.pids.items()}
        out["machine"] = machine_busy()
        out["bench"] = time.process_time()
        return out

    def report(self) -> str:
        end = self._sample()
        wall = time.monotonic() - self.t0
        d = {k: end[k] - self.start[k] for k in end}
        parts = ", ".join(f"{k} {v * 1000:.0f}" for k, v in d.items() if k != "machine")
        other = max(0.0, d["machine"] - sum(v for k, v in d.items() if k != "machine"))
        cores = os.cpu_count() or 1
        noisy = " -- NOISY: others took the CPU" if other > 0.15 * d["machine"] else ""
        return (f"CPU {d['machine'] * 1000:.0f} ms of {wall * cores * 1000:.0f} "
                f"({d['machine'] / wall / cores:.0%} of {cores} cores): {parts}, other "
                f"{other * 1000:.0f} ms{noisy}")


class Client:
    """Keep-alive HTTPS connections to the apiserver with the admin client certificate."""

    def __init__(self, kubeconfig: Path, server: str) -> None:
        cfg = yaml.safe_load(kubeconfig.read_text())
        user = cfg["users"][0]["user"]
        self.ctx = ssl.create_default_context(
            cafile=cfg["clusters"][0]["cluster"]["certificate-authority"])
        self.ctx.load_cert_chain(user["client-certificate"], user["client-key"])
        host, port = server.removeprefix("https://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)


def pod(name: str, skip: bool) -> bytes:
    meta: dict[str, Any] = {"name": name}
    if skip:
        meta["labels"] = dict(SKIP)
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}).encode()


def create(conn: http.client.HTTPSConnection, body: bytes) -> float:
    t = time.perf_counter()
    conn.request("POST", f"/api/v1/namespaces/{NS}/pods", body,
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - t
    if resp.status != 201:
        raise RuntimeError(f"pod creation: HTTP {resp.status}: {data[:300]!r}")
    return elapsed


class Sender:
    def __init__(self, client: Client, threads: int = 8) -> None:
        self.client = client
        self.threads = threads
        self.seq = 0
        self.lock = threading.Lock()

    def _name(self, tag: str) -> str:
        with self.lock:
            self.seq += 1
            return f"{tag}-{self.seq}"

    def paced(self, rate: float, seconds: float, skip: bool) -> tuple[list[float], float]:
        """Open loop: one creation every 1/rate s; (latencies, achieved rate)."""
        tasks: queue.Queue[bytes | None] = queue.Queue()
        lat: list[float] = []
        errors: list[str] = []

        def work() -> None:
            conn = self.client.connect()
            while (body := tasks.get()) is not None:
                try:
                    lat.append(create(conn, body))
                except Exception as exc:
                    errors.append(str(exc))
                    conn.close()
                    conn = self.client.connect()
            conn.close()

        workers = [threading.Thread(target=work) for _ in range(self.threads)]
        for w in workers:
            w.start()
        n = int(rate * seconds)
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            tasks.put(pod(self._name("w" if not skip else "n"), skip))
        for _ in workers:
            tasks.put(None)
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"{len(errors)} creations failed, first: {errors[0]}")
        return lat, len(lat) / wall

    def saturate(self, seconds: float, skip: bool) -> float:
        """Closed loop, every thread as fast as it can: creations per second."""
        stop = time.perf_counter() + seconds
        counts = [0] * self.threads

        def work(k: int) -> None:
            conn = self.client.connect()
            while time.perf_counter() < stop:
                create(conn, pod(self._name("s"), skip))
                counts[k] += 1
            conn.close()

        t0 = time.perf_counter()
        workers = [threading.Thread(target=work, args=(k,)) for k in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return sum(counts) / (time.perf_counter() - t0)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def row(label: str, lat: list[float], rate: float) -> str:
    ms = [v * 1000 for v in lat]
    return (f"  {label:<8} {len(ms):>5} pods  {rate:6.1f}/s  p50 {pct(ms, 0.5):6.2f} ms  "
            f"p90 {pct(ms, 0.9):6.2f}  p99 {pct(ms, 0.99):6.2f}  max {max(ms):6.2f}  "
            f"mean {statistics.fmean(ms):6.2f}")


def webhook_metric(url: str, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split()[-1])
    return 0.0


def run(args: argparse.Namespace) -> None:
    from localcluster.controlplane import ControlPlane
    from localcluster.ports import free_ports
    from localrun import manifests
    from localrun.kube import Kube
    from localrun.webhook import LocalWebhook

    work = Path(tempfile.mkdtemp(prefix="tke-bench-webhook-"))
    cp = ControlPlane(work / "cp")
    hook: LocalWebhook | None = None
    try:
        cp.start()
        kube = Kube(cp.kubeconfig, cp.server)
        objs = manifests.kustomize_build()
        for obj in objs:
            if obj["kind"] in ("ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                               "ClusterRoleBinding") and \
                    obj["metadata"]["name"].startswith("tke-eni-ip-webhook"):
                kube.apply(obj)

        def credentials(sa: str) -> Path:
            path = work / f"{sa}.kubeconfig"
            if not path.exists():
                kube.service_account_kubeconfig("kube-system", sa, path)
            return path

        port, health = free_ports(2)
        hook = LocalWebhook(objs, kube, work, port, health, credentials,
                            extra_argv=("--eni-only=true", "--log-level=warning"))
        hook.up()
        assert hook.daemon is not None and hook.daemon.pid is not None
        pids = {"apiserver": cp.pids()["kube-apiserver"], "etcd": cp.pids()["etcd"],
                "webhook": hook.daemon.pid}
        sender = Sender(Client(cp.kubeconfig, cp.server))
        sender.paced(args.rate, 2.0, True)  # warm-up: connections, caches
        sender.paced(args.rate, 2.0, False)
        print(f"\npod creations at {args.rate:g}/s, {args.rounds} x {args.seconds:g} s per "
              f"side, alternating (latency: client round trip of the POST)")
        lat: dict[bool, list[float]] = {True: [], False: []}
        rates: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for skip in (True, False):
                window = CpuWindow(pids)
                got, rate = sender.paced(args.rate, args.seconds, skip)
                lat[skip] += got
                rates[skip].append(rate)
                print(f"  round {r + 1} {'without' if skip else 'with':<7}: {rate:5.1f}/s; "
                      f"{window.report()}")
        print(row("without", lat[True], statistics.fmean(rates[True])))
        print(row("with", lat[False], statistics.fmean(rates[False])))
        for q in (0.5, 0.99):
            added = (pct(lat[False], q) - pct(lat[True], q)) * 1000
            print(f"  added p{int(q * 100)}: {added:+.2f} ms")
        count = webhook_metric(hook.health_url, "tke_eni_webhook_admission_duration_seconds_count")
        total = webhook_metric(hook.health_url, "tke_eni_webhook_admission_duration_seconds_sum")
        patched = webhook_metric(hook.health_url,
                                 'tke_eni_webhook_admissions_total{outcome="patched"}')
        handshakes = webhook_metric(hook.health_url, "tke_eni_webhook_tls_handshakes_total")
        print(f"  inside the webhook: {count:.0f} admissions ({patched:.0f} patched), mean "
              f"{total / max(count, 1) * 1000:.3f} ms (read, parse, decide, encode); "
              f"{handshakes:.0f} TLS handshakes (connections from the apiserver)")
        rss = Path(f"/proc/{pids['webhook']}/status").read_text().split("VmRSS:")[1].split()[0]
        print(f"  webhook RSS {int(rss) / 1024:.0f} MB")
        print(f"\nsaturation: {sender.threads} clients as fast as they can, {args.seconds:g} s "
              "each side")
        for skip in (True, False):
            window = CpuWindow(pids)
            rate = sender.saturate(args.seconds, skip)
            print(f"  {'without' if skip else 'with':<8} {rate:6.1f} creations/s; "
                  f"{window.report()}")
    finally:
        if hook is not None:
            hook.stop()
        cp.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    t = time.monotonic()
    run(args)
    print(f"bench done in {time.monotonic() - t:.0f} s (load average "
          f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
