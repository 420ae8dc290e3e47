"""Join a real node to a running local run and time it to its first pods (issue 17
item 3; docs/cloud.md "Node start to first pod"): a new cloud instance, the node's
containerd, kubelet and kube-proxy (``Environment.join_node``), and, the moment its
Node turns Ready, a burst of ENI pods pinned to it (``nodeSelector``
``kubernetes.io/hostname``). Polled every 0.1 s from here:

- ``ready_s``: join started -> the Node's Ready condition True;
- ``eni_ip_s``: Ready -> ``tke.cloud.tencent.com/eni-ip`` allocatable > 0;
- ``first_running_s``: Ready -> the first pod of the burst Running;
- ``starts``: each pod's creation -> Running;
- ``sandbox_failures``: ``FailedCreatePodSandBox`` events of the burst's pods (their
  ``count``), with the CNI's message per kind in ``why``.

Used by ``bench.nodestart`` and tests/e2e/test_node_start.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from localrun.nodedaemons import NodeSpec
from localrun.pods import plain_pod

if TYPE_CHECKING:
    from localrun.environment import Environment

ENI_IP = "tke.cloud.tencent.com/eni-ip"
POLL_S = 0.1
LABEL = "tke-localrun/node-start"


@dataclass
class JoinResult:
    node: str
    burst: int
    ready_s: float = 0.0
    eni_ip_s: float | None = None
    first_running_s: float | None = None
    starts: list[float] = field(default_factory=list)  # creation -> Running, per pod
    waits: list[float] = field(default_factory=list)  # creation -> bound (scheduled), per pod
    runs: list[float] = field(default_factory=list)  # bound -> Running, per pod
    #: (seconds after Ready, eni-ip allocatable) at each change seen
    allocatable: list[tuple[float, int]] = field(default_factory=list)
    sandbox_failures: int = 0
    why: dict[str, int] = field(default_factory=dict)
    cloud_calls: dict[str, int] = field(default_factory=dict)  # emulator calls in the join

    @property
    def running(self) -> int:
        return len(self.starts)


def _ready(node: dict[str, Any] | None) -> bool:
    conds = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _eni_ip(node: dict[str, Any] | None) -> int:
    value = ((node or {}).get("status") or {}).get("allocatable", {}).get(ENI_IP, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def burst_pod(name: str, node: str, run: str) -> dict[str, Any]:
    pod = plain_pod(name, node_name=node, eni=True)
    pod["metadata"]["labels"] = {LABEL: run}
    return pod


def _calls(env: Environment) -> dict[str, int]:
    assert env.emulator is not None
    return {str(k): int(v) for k, v in env.emulator.admin("GET", "/_admin/calls").items()}


def join_and_burst(env: Environment, spec: NodeSpec, burst: int, *, timeout: float = 300.0,
                   settle: float = 0.0,
                   progress: Callable[[str], None] = print) -> JoinResult:
    """Join ``spec`` as a new real node; at Ready (or ``settle`` seconds later: the
    reference, a node already up) create ``burst`` ENI pods pinned to it; wait until all
    run (or ``timeout`` after Ready: TimeoutError naming what is left). Times after Ready
    are counted from the burst's start.
    The pods stay (``delete_burst`` removes them); the node stays until ``env.stop()``."""
    result = JoinResult(spec.name, burst)
    run = f"{spec.name}-{int(time.time())}"
    calls_before = _calls(env)
    failure: list[BaseException] = []

    def join() -> None:
        try:
            env.join_node(spec)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting side
            failure.append(exc)

    joiner = threading.Thread(target=join, name=f"join-{spec.name}", daemon=True)
    t0 = time.monotonic()
    joiner.start()
    t_ready = _wait_ready(env, spec.name, t0 + timeout, failure)
    result.ready_s = t_ready - t0
    if settle > 0:
        progress(f"{spec.name} Ready after {result.ready_s:.1f} s: settling {settle:g} s")
        time.sleep(settle)
        t_ready = time.monotonic()
    progress(f"{spec.name} Ready after {result.ready_s:.1f} s: creating {burst} pods on it")
    created: dict[str, float] = {}
    for i in range(burst):
        name = f"start-{spec.name}-{i:02d}"
        env.kube.request("/api/v1/namespaces/default/pods", "POST",
                         burst_pod(name, spec.name, run))
        created[name] = time.monotonic()
    bound: dict[str, float] = {}
    running = _watch_burst(env, result, run, created, t_ready=t_ready, timeout=timeout,
                           bound=bound)
    result.first_running_s = min(running.values()) - t_ready
    result.starts = sorted(running[n] - created[n] for n in running)
    result.waits = sorted(bound[n] - created[n] for n in running)
    result.runs = sorted(running[n] - bound[n] for n in running)
    joiner.join(timeout=60)
    if failure:
        raise RuntimeError(f"joining {spec.name} failed: {failure[0]}") from failure[0]
    _sandbox_failures(env, result, set(created))
    after = _calls(env)
    result.cloud_calls = {k: v - calls_before.get(k, 0) for k, v in sorted(after.items())
                          if v - calls_before.get(k, 0) > 0}
    return result


def _wait_ready(env: Environment, name: str, deadline: float,
                failure: list[BaseException]) -> float:
    while not _ready(env.kube.node(name)):
        if failure:
            raise RuntimeError(f"joining {name} failed: {failure[0]}") from failure[0]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} not Ready in time after the join started")
        time.sleep(POLL_S / 2)
    return time.monotonic()


def _watch_burst(env: Environment, result: JoinResult, run: str, created: dict[str, float], *,
                 t_ready: float, timeout: float, bound: dict[str, float]) -> dict[str, float]:
    """Poll until every pod runs: when each was first seen Running (and bound to the
    node, in ``bound``); eni_ip_s and the allocatable steps on the way."""
    kube = env.kube
    running: dict[str, float] = {}
    while len(running) < len(created):
        now = time.monotonic()
        value = _eni_ip(kube.node(result.node))
        if not result.allocatable or result.allocatable[-1][1] != value:
            result.allocatable.append((round(now - t_ready, 2), value))
        if result.eni_ip_s is None and value > 0:
            result.eni_ip_s = now - t_ready
        for pod in kube.pods("default", f"{LABEL}={run}"):
            name = pod["metadata"]["name"]
            if pod["spec"].get("nodeName"):
                bound.setdefault(name, now)
            if name not in running and (pod.get("status") or {}).get("phase") == "Running":
                bound.setdefault(name, now)
                running[name] = now
        if now - t_ready > timeout:
            left = sorted(set(created) - set(running))
            raise TimeoutError(f"{len(left)} of {len(created)} pods on {result.node} not "
                               f"Running {timeout:.0f} s after Ready: {left[:5]}")
        time.sleep(POLL_S)
    if result.eni_ip_s is None:  # pods run, so it was advertised between two polls
        result.eni_ip_s = min(running.values()) - t_ready
    return running


def _sandbox_failures(env: Environment, result: JoinResult, pods: set[str]) -> None:
    for event in env.kube.items("/api/v1/namespaces/default/events"):
        obj = event.get("involvedObject") or {}
        if event.get("reason") != "FailedCreatePodSandBox" or obj.get("name") not in pods:
            continue
        count = int(event.get("count") or 1)
        result.sandbox_failures += count
        why = str(event.get("message", "")).rsplit("(add): ", 1)[-1][:200]
        result.why[why] = result.why.get(why, 0) + count


def delete_burst(env: Environment, result: JoinResult) -> None:
    for i in range(result.burst):
        env.kube.delete(f"/api/v1/namespaces/default/pods/start-{result.node}-{i:02d}")
