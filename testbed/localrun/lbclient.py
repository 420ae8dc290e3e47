"""The echo web servers behind the load balancer stand-in (``localrun.lbsim``) and a small
HTTP client for it, run inside the client's network namespace::

    nsenter --net=/run/netns/<prefix>-lbclient python -m localrun.lbclient \\
        --host 198.18.0.1 --port 80 [--count N | --seconds S] [--workers W]

Each request is its own TCP connection (``GET /cgi-bin/peer HTTP/1.0``), so every request
is a new flow the LB balances. The echo server (``ECHO_SCRIPT``) answers
``peer=<address it sees> pod=<hostname>``. It stops after ``--count`` requests per worker,
after ``--seconds``, or on SIGTERM/SIGINT (requests in flight finish), and prints one JSON
summary: requests, ok, failed, the first failures (time, error), the peers and pods seen
(with the first and last time each pod answered), latency p50/p99 (connect through the
last byte)."""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

PATH = "/cgi-bin/peer"
#: the CGI the web server pods serve at PATH (busybox httpd sets REMOTE_ADDR)
ECHO_SCRIPT = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n" \
              "echo \"peer=$REMOTE_ADDR pod=$(hostname)\"\n"


def echo_deployment(name: str, replicas: int, nodes: list[str]) -> dict[str, Any]:
    """HTTP servers on the route-ENI network (busybox ``httpd`` of the nodes' ``nginx``
    stand-in image, serving ``ECHO_SCRIPT`` at ``PATH`` and a static ``/``), one per node
    where possible, on ``nodes`` only; a readiness probe, a 5 s ``preStop`` delay (the pod
    serves until the LB has dropped it), rolling updates with ``maxUnavailable: 0``."""
    from localrun.pods import ENI_IP, NETWORKS_ANNOTATION

    # (PID 1 ignores TERM unless it traps it: the shell stops httpd at TERM, which comes
    # after the preStop delay)
    start = ("mkdir -p /www/cgi-bin && printf '%s' \"$ECHO_SCRIPT\" > /www" + PATH
             + " && chmod 755 /www" + PATH + " && echo ok > /www/index.html || exit 1\n"
             "trap 'kill $!; exit 0' TERM\nhttpd -f -p 80 -h /www &\nwait\n")
    container = {
        "name": "web", "image": "nginx", "command": ["sh", "-c", start],
        "env": [{"name": "ECHO_SCRIPT", "value": ECHO_SCRIPT}],
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 1},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
        "resources": {"requests": {ENI_IP: "1"}, "limits": {ENI_IP: "1"}}}
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels,
                             "annotations": {NETWORKS_ANNOTATION: "tke-route-eni"}},
                "spec": {
                    "containers": [container], "terminationGracePeriodSeconds": 20,
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{
                                "key": "kubernetes.io/hostname", "operator": "In",
                                "values": list(nodes)}]}]}},
                        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100, "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": labels}}}]}}}}}}


def echo_service(name: str) -> dict[str, Any]:
    """The Service of ``echo_deployment``: NodePort (the bridge cluster's LB path); its
    EndpointSlices are what the direct path reads."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": 80,
                                "protocol": "TCP"}]}}


def parse_reply(raw: bytes) -> tuple[int, dict[str, str]]:
    """(HTTP status, the echo's ``key=value`` fields) of a whole reply, the peer as a
    plain IPv4 address. Pure."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP reply: {status_line[:80]!r}")
    fields = dict(w.split("=", 1) for w in body.decode("latin-1").split() if "=" in w)
    if "peer" in fields:  # busybox httpd listens on IPv6: [::ffff:198.18.0.10]
        fields["peer"] = fields["peer"].strip("[]").removeprefix("::ffff:")
    return int(parts[1]), fields


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]  # nearest rank


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    peers: Counter[str] = field(default_factory=Counter)
    pods: Counter[str] = field(default_factory=Counter)
    pod_first: dict[str, float] = field(default_factory=dict)
    pod_last: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def success(self, t: float, ms: float, fields: dict[str, str]) -> None:
        with self.lock:
            self.ok += 1
            self.latencies_ms.append(ms)
            self.peers[fields.get("peer", "?")] += 1
            pod = fields.get("pod", "?")
            self.pods[pod] += 1
            self.pod_first.setdefault(pod, t)
            self.pod_last[pod] = t

    def failure(self, t: float, error: str) -> None:
        with self.lock:
            self.failed += 1
            if len(self.failures) < 20:
                self.failures.append({"t": round(t, 3), "error": error})

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {"requests": self.ok + self.failed, "ok": self.ok, "failed": self.failed,
                    "failures": self.failures, "peers": dict(self.peers),
                    "pods": dict(self.pods),
                    "pod_first": {k: round(v, 3) for k, v in self.pod_first.items()},
                    "pod_last": {k: round(v, 3) for k, v in self.pod_last.items()},
                    "seconds": round(time.monotonic() - self.started, 3),
                    "p50_ms": round(percentile(self.latencies_ms, 50), 3),
                    "p99_ms": round(percentile(self.latencies_ms, 99), 3)}


def one_request(host: str, port: int, timeout: float) -> tuple[int, dict[str, str]]:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {PATH} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while True:
            got = s.recv(65536)
            if not got:
                break
            chunks.append(got)
    return parse_reply(b"".join(chunks))


def worker(tally: Tally, stop: threading.Event, *, host: str, port: int, count: int,
           timeout: float) -> None:
    done = 0
    while not stop.is_set() and (count <= 0 or done < count):
        t0 = time.monotonic()
        try:
            status, fields = one_request(host, port, timeout)
            if status != 200 or "peer" not in fields:
                raise ValueError(f"HTTP {status} {fields}")
            tally.success(t0 - tally.started, (time.monotonic() - t0) * 1000, fields)
        except (OSError, ValueError) as exc:
            tally.failure(t0 - tally.started, f"{type(exc).__name__}: {exc}")
        done += 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localrun.lbclient", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--count", type=int, default=0, help="requests per worker (0: until stopped)")
    p.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=5.0, help="per request")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    tally = Tally()
    threads = [threading.Thread(target=worker, daemon=True, args=(tally, stop),
                                kwargs={"host": args.host, "port": args.port,
                                        "count": args.count, "timeout": args.timeout})
               for _ in range(args.workers)]
    for t in threads:
        t.start()
    print(json.dumps({"started": True}), flush=True)
    deadline = time.monotonic() + args.seconds
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        stop.wait(0.1)
    stop.set()
    for t in threads:
        t.join(args.timeout + 1)
    print(json.dumps(tally.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
