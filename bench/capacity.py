"""``python -m bench.capacity``: a rolling update of a Deployment that fills every real
node of the local run (docs/local-run.md), with the agent's default cooldown and with
``--cooldown 0`` (the floor), in the same run. Run by hand (root, the local run's
set-up; several minutes per environment); not part of ``python -m bench``.

For each setting: a fresh ``localrun`` Environment (three real nodes, S5.LARGE8: 27
eni-ip each) with the agent's ``--cooldown`` set; a Deployment (busybox sleepers, one
``eni-ip`` each, ``maxSurge 25%``, ``maxUnavailable 0``) sized so that it and its
surge fill the real nodes' eni-ip capacity (81 / 1.25 → 64 + 16), created with 3
replicas and scaled to that size (the issue's scale-up: timed to all Running, its
``FailedCreatePodSandBox`` counted); once all Running, ``kubectl rollout restart``
(the template annotation ``kubectl.kubernetes.io/restartedAt``). Printed:

- the scale-up's time and sandbox failures;
- the total rollout time (restart → every pod of the new template Running, none old);
- p50/p99 of "an IP became usable on a node" → "a pending pod bound there": for every
  pod of the rollout that was refused before its binding, the time from the last rise
  of its node's healthy eni-ip count (the device plugin's ListAndWatch send, in its
  log) to its binding (kube-scheduler's log) (``bench.capacity_trace.rise_to_bound``;
  the Node's allocatable, polled every 0.1 s, gives the split at the kubelet);
- the ``FailedCreatePodSandBox`` events of the rollout;
- the machine's load (load average before → after, CPUs busy over the run).

Targets (issue 15): p99 usable → bound ≤ 2 s; rollout ≤ 1.2 × the cooldown-0 rollout
+ the cooldown; 0 sandbox failures.

Where the time goes (``bench.capacity_trace``): the component logs are kept under
``--out`` (``kubectl logs --timestamps`` of every agent, extender and ipamd container,
the control plane's and the kubelets' logs), and each waited pod's wait is split into
device plugin send → Node allocatable (the kubelet's status loop) → bound
(kube-scheduler). With ``--scale-down`` the run with a non-zero cooldown then scales
the Deployment to 3, fills what the nodes can use at once, and times one more pod
(the issue's scenario; its attempts and the agents' and ipamd's log lines around it are
printed)."""

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

from bench import capacity_trace as trace_mod
from bench.nodestart import Load

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
    trace: list[str] = field(default_factory=list)  # where the time went (printed)
    polled: list[float] = field(default_factory=list)  # the waits by polling the Node
    scale_up_s: float = 0.0  # 3 -> replicas, all Running
    scale_up_failures: int = 0  # FailedCreatePodSandBox during it
    load: str = ""  # the machine's load over the run


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


def allocatable(kube: Any, names: list[str], key: str = "allocatable") -> dict[str, int]:
    out = {}
    for n in names:
        node = kube.node(n) or {}
        out[n] = int((node.get("status") or {}).get(key, {}).get(ENI_IP, "0"))
    return out


def sandbox_failures(kube: Any, before: set[str]) -> list[dict[str, Any]]:
    return [e for e in kube.items("/api/v1/namespaces/default/events")
            if e.get("reason") == "FailedCreatePodSandBox" and e["metadata"]["uid"] not in before]


def collect(env: Any, out: Path) -> dict[str, str]:
    """Keep the logs the trace reads; return node → its agent pod's log text (every
    container, ``--timestamps``)."""
    from localrun.environment import AGENT, EXTENDER, IPAMD

    out.mkdir(parents=True, exist_ok=True)
    agent_logs: dict[str, str] = {}
    for app in (AGENT, EXTENDER, IPAMD):
        for p in env.component_pods(app):
            name = p["metadata"]["name"]
            text = ""
            for c in p["spec"]["containers"]:
                text += env.kubectl("-n", "kube-system", "logs", name, "-c", c["name"],
                                    "--timestamps", check=False, timeout=60)
            (out / f"{name}.log").write_text(text)
            if app == AGENT:
                agent_logs[p["spec"].get("nodeName", "")] = text
    if env.cp is not None:
        for log in env.cp.logs_dir.glob("*.log"):
            shutil.copy(log, out / f"cp-{log.name}")
    for rn in env.real.values():
        if rn.node.kubelet is not None:
            shutil.copy(rn.node.kubelet.log, out / f"kubelet-{rn.name}.log")
    return agent_logs


def trace(env: Any, out: Path, waited: list[tuple[str, float, float]],
          node_of: dict[str, str]) -> tuple[list[str], list[float]]:
    agent_logs = collect(env, out)
    sends = {node: trace_mod.dp_sends(text) for node, text in agent_logs.items()}
    sched = (out / "cp-kube-scheduler.log")
    year = time.gmtime().tm_year
    attempts = trace_mod.scheduler_attempts(
        sched.read_text(errors="replace") if sched.exists() else "", year)
    b = trace_mod.breakdown(waited, node_of, sends, attempts)
    chain = trace_mod.rise_to_bound(sends, attempts, node_of)
    return [
        f"  plugin rise → bound (logs, whole chain): p50 {trace_mod.pct(chain, 50):.2f} s / "
        f"p99 {trace_mod.pct(chain, 99):.2f} s / max {max(chain, default=float('nan')):.2f} s "
        f"(n={len(chain)})",
        *b.lines(),
    ], chain


def measure(cooldown: str, out: Path, scale_down: bool) -> Run:
    from localrun.environment import Environment
    from localrun.kube import wait_for

    run = Run(cooldown)
    workdir = WORKDIR / f"bench-capacity-{secrets.token_hex(3)}"
    env = Environment(workdir, prefix="tkb", kwok_nodes=1,
                      agent_extra_args=(f"--cooldown={cooldown}",),
                      progress=lambda line: print(line, flush=True))
    env.start()
    load = Load()
    try:
        kube, real = env.kube, list(env.real)
        # the rollout's surge (25%) must fit too, or maxUnavailable 0 never starts; sized
        # by the nodes' eni-ip capacity (allocatable follows the ENIs attached so far)
        wait_for("eni-ip capacity on every real node",
                 lambda: all(allocatable(kube, real, "capacity").values()), 120)
        run.replicas = int(sum(allocatable(kube, real, "capacity").values()) / 1.25)
        want = [3]

        def all_running() -> bool:
            pods = [p for p in kube.pods("default", f"app={NAME}")
                    if not p["metadata"].get("deletionTimestamp")]
            return len(pods) == want[0] and all(
                p["status"].get("phase") == "Running" for p in pods)

        kube.apply(deployment(3))
        wait_for("3 pods Running", all_running, 600)
        # the scale-up: 3 -> what fills the nodes, timed, sandbox failures counted
        before = {e["metadata"]["uid"] for e in sandbox_failures(kube, set())}
        want[0] = run.replicas
        t0 = time.monotonic()
        kube.merge_patch(PATH, {"spec": {"replicas": run.replicas}})
        wait_for(f"{run.replicas} pods Running", all_running, 600, interval=0.1)
        run.scale_up_s = time.monotonic() - t0
        failed = sandbox_failures(kube, before)
        run.scale_up_failures = sum(int(e.get("count") or 1) for e in failed)
        for e in failed:
            why = "scale-up: " + str(e.get("message", "")).rsplit("(add): ", 1)[-1][:200]
            run.why[why] = run.why.get(why, 0) + int(e.get("count") or 1)
        print(f"scale-up 3 -> {run.replicas}: all Running after {run.scale_up_s:.1f} s, "
              f"FailedCreatePodSandBox {run.scale_up_failures}", flush=True)
        before = {e["metadata"]["uid"] for e in sandbox_failures(kube, set())}
        old = {p["metadata"]["uid"] for p in kube.pods("default", f"app={NAME}")}
        rises: dict[str, list[float]] = {n: [] for n in real}  # allocatable went up (wall)
        last = allocatable(kube, real)
        created: dict[str, float] = {}
        names: dict[str, str] = {}
        bound: dict[str, tuple[str, float]] = {}
        start = time.monotonic()
        kube.merge_patch(PATH, {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")}}}}})
        while True:
            now = time.time()
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
                names[uid] = f"default/{p['metadata']['name']}"
                node = p["spec"].get("nodeName")
                if node and uid not in bound:
                    bound[uid] = (node, now)
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            if (len(live) == run.replicas and not any(p["metadata"]["uid"] in old for p in pods)
                    and all(p["status"].get("phase") == "Running" for p in live)):
                run.rollout_s = time.monotonic() - start
                break
            if time.monotonic() - start > 1800:
                raise TimeoutError("rollout not done after 30 minutes")
            time.sleep(0.1)
        waited: list[tuple[str, float, float]] = []
        for uid, (node, at) in bound.items():
            waited_from = [r for r in rises[node] if r <= at]
            if waited_from and waited_from[-1] > created[uid]:  # it waited for room
                run.waits.append(at - max(waited_from[-1], created[uid]))
                waited.append((names[uid], created[uid], waited_from[-1]))
        failures = sandbox_failures(kube, before)
        run.sandbox_failures = sum(int(e.get("count") or 1) for e in failures)
        for e in failures:
            why = str(e.get("message", "")).rsplit("(add): ", 1)[-1][:200]
            run.why[why] = run.why.get(why, 0) + int(e.get("count") or 1)
        node_of = {names[uid]: node for uid, (node, _) in bound.items()}
        run.polled = run.waits  # Node polled: may pair a binding with an older rise
        run.trace, run.waits = trace(env, out / f"cooldown-{cooldown}-rollout", waited, node_of)
        if scale_down and float(cooldown) > 0:
            run.trace += after_scale_down(env, out / f"cooldown-{cooldown}-scale-down")
        run.load = load.line()
    finally:
        problems = env.stop()
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
    return run


def after_scale_down(env: Any, out: Path) -> list[str]:
    """The issue's scenario: scale to 3, take what the nodes can use at once, then one
    more pod; print its timeline against the logs."""
    from localrun.kube import wait_for
    from localrun.pods import plain_pod, running_pod

    kube, real = env.kube, list(env.real)
    t_scale = time.time()
    kube.merge_patch(PATH, {"spec": {"replicas": 3}})
    wait_for("3 pods left", lambda: len(kube.pods("default", f"app={NAME}")) == 3, 300)
    t_gone = time.time()

    def free() -> int:
        total = sum(allocatable(kube, real).values())
        for p in kube.items("/api/v1/pods"):
            if p["spec"].get("nodeName") in real and p["status"].get("phase") in (
                    "Pending", "Running"):
                for c in p["spec"]["containers"]:
                    total -= int(((c.get("resources") or {}).get("requests") or {}).get(
                        ENI_IP, 0))
        return total

    def settled() -> tuple[int] | None:
        first = free()
        time.sleep(4)
        return (first,) if free() == first else None

    slots = wait_for("allocatable settled", settled, 60)[0]
    t_settled = time.time()
    for i in range(max(0, slots)):
        kube.request("/api/v1/namespaces/default/pods", "POST",
                     plain_pod(f"fill-{i}", eni=True))
    t_late = time.time()
    kube.request("/api/v1/namespaces/default/pods", "POST", plain_pod("late", eni=True))
    pod = running_pod(kube, "late", timeout=400)
    t_running = time.time()
    node = pod["spec"]["nodeName"]
    agent_logs = collect(env, out)
    sched = out / "cp-kube-scheduler.log"
    attempts = trace_mod.scheduler_attempts(
        sched.read_text(errors="replace") if sched.exists() else "", time.gmtime().tm_year)
    late = attempts.get("default/late", trace_mod.Attempts())
    sends = [(t, h) for t, h in trace_mod.dp_sends(agent_logs.get(node, "")) if t >= t_scale]

    def rel(t: float | None) -> str:
        return "-" if t is None else f"{t - t_scale:+.1f} s"

    lines = [
        "  after the scale-down (t=0: replicas → 3 patched at "
        f"{time.strftime('%H:%M:%S', time.gmtime(t_scale))} UTC):",
        f"  pods gone {rel(t_gone)}; settled {rel(t_settled)} ({slots} slot(s) filled); "
        f"late created {rel(t_late)}; bound {rel(late.bound)} on {late.node or node}; "
        f"Running {rel(t_running)}",
        f"  late's failed attempts: {', '.join(rel(t) for t in late.failed) or 'none'}",
        f"  {node}'s plugin sends (healthy): "
        + ", ".join(f"{rel(t)} ({h})" for t, h in sends[:40]),
    ]
    for name in sorted(p.name for p in out.glob("*.log")):
        if name.startswith(("tke-eni-agent", "tke-eni-ipamd")):
            for line in (out / name).read_text(errors="replace").splitlines():
                stamped = trace_mod.kubectl_time(line)
                if stamped is None or not (t_gone - 5 <= stamped[0] <= t_running + 1):
                    continue
                if any(k in line for k in ("floor", "refill", "release", "Releas", "warm")):
                    lines.append(f"    {name[:28]} {rel(stamped[0])} {stamped[1][:220]}")
    return lines[:200]


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
    parser.add_argument("--out", type=Path,
                        default=WORKDIR / f"bench-capacity-out-{secrets.token_hex(3)}",
                        help="where the component logs are kept")
    parser.add_argument("--scale-down", action="store_true",
                        help="after the rollout with a non-zero cooldown, the issue's "
                        "scale-down scenario")
    args = parser.parse_args(argv)
    print(f"logs kept under {args.out}", flush=True)
    runs = [measure(c, args.out, args.scale_down) for c in args.cooldowns.split(",")]
    print("\n| --cooldown | replicas | scale-up 3 → replicas (FailedCreatePodSandBox) "
          "| rollout | usable → bound p50 | p99 | waits | FailedCreatePodSandBox | machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.cooldown} s | {r.replicas} | {r.scale_up_s:.1f} s ({r.scale_up_failures}) "
              f"| {r.rollout_s:.1f} s | {pct(r.waits, 50):.2f} s "
              f"| {pct(r.waits, 99):.2f} s | {len(r.waits)} | {r.sandbox_failures} | {r.load} |")
    for r in runs:
        for why, n in sorted(r.why.items(), key=lambda kv: -kv[1]):
            print(f"--cooldown {r.cooldown}: {n} × {why}")
    for r in runs:
        print(f"--cooldown {r.cooldown}: where the time went")
        for line in r.trace:
            print(line)
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
