"""``python -m bench.capacity``: a rolling update of a Deployment that fills every real
node of the local run (docs/local-run.md), with the agent's default cooldown and with
``--cooldown 0`` (the floor), in the same run. Run by hand (root, the local run's
set-up; several minutes per environment); not part of ``python -m bench``.

For each setting: a fresh ``localrun`` Environment (three real nodes, S5.LARGE8: 27
eni-ip each) with the agent's ``--cooldown`` set; a Deployment (busybox sleepers, one
``eni-ip`` each, ``maxSurge 25%``, ``maxUnavailable 0``) sized so that it and its
surge fill what the real nodes can use (81 / 1.25 → 64 + 16); once all Running,
``kubectl rollout restart`` (the template annotation
``kubectl.kubernetes.io/restartedAt``). Printed:

- the total rollout time (restart → every pod of the new template Running, none old);
- p50/p99 of "an IP became usable on a node" → "a pending pod bound there": for every
  pod of the rollout that had to wait (no slot when it was created), the time from the
  later of its creation and the moment the node's allocatable ``eni-ip`` last rose
  before its binding, to its binding (both seen by polling every 0.1 s);
- the ``FailedCreatePodSandBox`` events of the rollout.

Targets (issue 15): p99 usable → bound ≤ 2 s; rollout ≤ 1.2 × the cooldown-0 rollout
+ the cooldown; 0 sandbox failures."""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENI_IP = "tke.cloud.tencent.com/eni-ip"
NAME = "roll"
PATH = f"/apis/apps/v1/namespaces/default/deployments/{NAME}"
WORKDIR = Path("/var/lib/tke-e2e")


@dataclass
class Run:
    cooldown: str
    replicas: int = 0
    rollout_s: float = 0.0
    waits: list[float] = field(default_factory=list)
    sandbox_failures: int = 0
    why: dict[str, int] = field(default_factory=dict)  # sandbox failure message -> count


def deployment(replicas: int) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": ["sleep", "100000"],
                 "resources": {"requests": {ENI_IP: "1"}, "limits": {ENI_IP: "1"}}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": NAME}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": NAME},
                             "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
            },
        },
    }


def allocatable(kube: Any, names: list[str]) -> dict[str, int]:
    out = {}
    for n in names:
        node = kube.node(n) or {}
        out[n] = int((node.get("status") or {}).get("allocatable", {}).get(ENI_IP, "0"))
    return out


def measure(cooldown: str) -> Run:
    from localrun.environment import Environment
    from localrun.kube import wait_for

    run = Run(cooldown)
    workdir = WORKDIR / f"bench-capacity-{secrets.token_hex(3)}"
    env = Environment(workdir, prefix="tkb", kwok_nodes=1,
                      agent_extra_args=(f"--cooldown={cooldown}",),
                      progress=lambda line: print(line, flush=True))
    env.start()
    try:
        kube, real = env.kube, list(env.real)
        # the rollout's surge (25%) must fit too, or maxUnavailable 0 never starts
        run.replicas = int(sum(allocatable(kube, real).values()) / 1.25)
        kube.apply(deployment(run.replicas))

        def all_running() -> bool:
            pods = [p for p in kube.pods("default", f"app={NAME}")
                    if not p["metadata"].get("deletionTimestamp")]
            return len(pods) == run.replicas and all(
                p["status"].get("phase") == "Running" for p in pods)

        wait_for(f"{run.replicas} pods Running", all_running, 600)
        before = {e["metadata"]["uid"] for e in kube.items("/api/v1/namespaces/default/events")
                  if e.get("reason") == "FailedCreatePodSandBox"}
        old = {p["metadata"]["uid"] for p in kube.pods("default", f"app={NAME}")}
        rises: dict[str, list[float]] = {n: [] for n in real}  # allocatable went up
        last = allocatable(kube, real)
        created: dict[str, float] = {}
        bound: dict[str, tuple[str, float]] = {}
        start = time.monotonic()
        kube.merge_patch(PATH, {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}})
        while True:
            now = time.monotonic()
            cur = allocatable(kube, real)
            for n in real:
                if cur[n] > last[n]:
                    rises[n].append(now)
            last = cur
            pods = kube.pods("default", f"app={NAME}")
            for p in pods:
                uid = p["metadata"]["uid"]
                if uid in old:
                    continue
                created.setdefault(uid, now)
                node = p["spec"].get("nodeName")
                if node and uid not in bound:
                    bound[uid] = (node, now)
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            if (len(live) == run.replicas and not any(p["metadata"]["uid"] in old for p in pods)
                    and all(p["status"].get("phase") == "Running" for p in live)):
                run.rollout_s = time.monotonic() - start
                break
            if now - start > 1800:
                raise TimeoutError("rollout not done after 30 minutes")
            time.sleep(0.1)
        for uid, (node, at) in bound.items():
            waited_from = [r for r in rises[node] if r <= at]
            if waited_from and waited_from[-1] > created[uid]:  # it waited for room
                run.waits.append(at - max(waited_from[-1], created[uid]))
        failures = [e for e in kube.items("/api/v1/namespaces/default/events")
                    if e.get("reason") == "FailedCreatePodSandBox"
                    and e["metadata"]["uid"] not in before]
        run.sandbox_failures = sum(int(e.get("count") or 1) for e in failures)
        for e in failures:
            why = str(e.get("message", "")).rsplit("(add): ", 1)[-1][:200]
            run.why[why] = run.why.get(why, 0) + int(e.get("count") or 1)
    finally:
        problems = env.stop()
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__)
    parser.add_argument("--cooldowns", default="150,0",
                        help="agent --cooldown values, one environment each (default 150,0)")
    args = parser.parse_args(argv)
    runs = [measure(c) for c in args.cooldowns.split(",")]
    print("\n| --cooldown | replicas | rollout | usable → bound p50 | p99 | waits "
          "| FailedCreatePodSandBox |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.cooldown} s | {r.replicas} | {r.rollout_s:.1f} s | {pct(r.waits, 50):.2f} s "
              f"| {pct(r.waits, 99):.2f} s | {len(r.waits)} | {r.sandbox_failures} |")
    for r in runs:
        for why, n in sorted(r.why.items(), key=lambda kv: -kv[1]):
            print(f"--cooldown {r.cooldown}: {n} × {why}")
    floor = next((r for r in runs if float(r.cooldown) == 0), None)
    if floor is not None:
        for r in runs:
            if r is not floor:
                bound = 1.2 * floor.rollout_s + float(r.cooldown)
                print(f"--cooldown {r.cooldown}: rollout {r.rollout_s:.1f} s vs target "
                      f"{bound:.1f} s (1.2 × {floor.rollout_s:.1f} + {r.cooldown})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
