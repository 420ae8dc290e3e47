"""Where the time of "an IP became usable" → "a pending pod bound there" goes, from
the logs ``bench.capacity`` keeps (pure parsing, no I/O but the reads of the kept
files).

Four timestamps per waited pod, all wall clock (UTC):

- ``send``: the device plugin's ListAndWatch update on the node whose healthy count
  rose (its container log, ``kubectl logs --timestamps``); the agent rewrote the
  capacity file at most ``--watch-interval`` (0.1 s) before it;
- ``node``: the Node's allocatable ``eni-ip`` rose (the bench polls every 0.1 s): the
  kubelet's node status loop (``nodeStatusUpdateFrequency``) wrote it;
- ``bound``: kube-scheduler's "Successfully bound pod to node" (its log, µs);
- the pod's failed attempts ("Unable to schedule pod; no fit; waiting") between them.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

HEALTHY = re.compile(r"\((\d+) healthy\)")
KLOG = re.compile(r"^[IWE](\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})")
POD = re.compile(r'pod="([^"]+)"')
NODE = re.compile(r'node="([^"]+)"')


def kubectl_time(line: str) -> tuple[float, str] | None:
    """(epoch seconds, rest) of a ``kubectl logs --timestamps`` line."""
    stamp, _, rest = line.partition(" ")
    if not stamp.endswith("Z") or "T" not in stamp:
        return None
    whole, _, frac = stamp[:-1].partition(".")
    try:
        t = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return t.timestamp() + (float(f"0.{frac}") if frac.isdigit() else 0.0), rest


def klog_time(line: str, year: int) -> float | None:
    m = KLOG.match(line)
    if m is None:
        return None
    mo, d, h, mi, s, us = (int(x) for x in m.groups())
    return dt.datetime(year, mo, d, h, mi, s, us, tzinfo=dt.UTC).timestamp()


def dp_sends(text: str) -> list[tuple[float, int]]:
    """(time, healthy) of every ListAndWatch message of one device plugin."""
    out = []
    for line in text.splitlines():
        if "ListAndWatch" not in line or "healthy" not in line:
            continue
        stamped = kubectl_time(line)
        m = HEALTHY.search(line)
        if stamped is not None and m is not None:
            out.append((stamped[0], int(m.group(1))))
    return out


@dataclass
class Attempts:
    failed: list[float] = field(default_factory=list)
    bound: float | None = None
    node: str = ""


def scheduler_attempts(text: str, year: int) -> dict[str, Attempts]:
    """pod "<ns>/<name>" → its failed attempts and its binding (kube-scheduler --v=2)."""
    out: dict[str, Attempts] = {}
    for line in text.splitlines():
        failed = "Unable to schedule pod" in line
        bound = "Successfully bound pod to node" in line
        if not (failed or bound):
            continue
        t, pod = klog_time(line, year), POD.search(line)
        if t is None or pod is None:
            continue
        a = out.setdefault(pod.group(1), Attempts())
        if failed:
            a.failed.append(t)
        else:
            node = NODE.search(line)
            a.bound, a.node = t, node.group(1) if node else ""
    return out


def rises(sends: Iterable[tuple[float, int]]) -> list[float]:
    """The times a plugin's healthy count went up."""
    out, last = [], None
    for t, healthy in sends:
        if last is not None and healthy > last:
            out.append(t)
        last = healthy
    return out


def latest_before(times: list[float], t: float) -> float | None:
    before = [x for x in times if x <= t]
    return before[-1] if before else None


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


@dataclass
class Breakdown:
    """Per waited pod: usable (plugin send) → Node → bound, and the attempts."""

    send_to_bound: list[float] = field(default_factory=list)
    send_to_node: list[float] = field(default_factory=list)
    node_to_bound: list[float] = field(default_factory=list)
    failed_after_node: int = 0  # pods refused again after their node's allocatable rose
    no_attempt_after_node: list[float] = field(default_factory=list)  # node → next attempt

    def lines(self) -> list[str]:
        def f(v: list[float]) -> str:
            return f"p50 {pct(v, 50):.2f} s / p99 {pct(v, 99):.2f} s / max " + (
                f"{max(v):.2f} s" if v else "nan") + f" (n={len(v)})"

        return [
            f"  plugin send → bound: {f(self.send_to_bound)}",
            f"  plugin send → Node allocatable (kubelet status loop): {f(self.send_to_node)}",
            f"  Node allocatable → bound (kube-scheduler): {f(self.node_to_bound)}",
            f"  Node allocatable → the pod's next attempt: {f(self.no_attempt_after_node)}",
            f"  pods refused again after their Node rose: {self.failed_after_node}",
        ]


def breakdown(
    waited: list[tuple[str, float, float]],  # (pod "<ns>/<name>", created, Node rise)
    node_of: dict[str, str],
    sends: dict[str, list[tuple[float, int]]],  # node → plugin sends
    attempts: dict[str, Attempts],
) -> Breakdown:
    out = Breakdown()
    ups = {node: rises(s) for node, s in sends.items()}
    for pod, created, node_rise in waited:
        a = attempts.get(pod)
        node = node_of.get(pod, "")
        if a is None or a.bound is None or not node:
            continue
        send = latest_before(ups.get(node, []), node_rise + 0.05)  # poll vs log clocks
        if send is not None and send > created:
            out.send_to_bound.append(a.bound - send)
            out.send_to_node.append(node_rise - send)
        out.node_to_bound.append(a.bound - node_rise)
        after = [t for t in a.failed if node_rise <= t < a.bound]
        out.failed_after_node += bool(after)
        nxt = next((t for t in [*a.failed, a.bound] if t >= node_rise), None)
        if nxt is not None:
            out.no_attempt_after_node.append(nxt - node_rise)
    return out


def rise_to_bound(
    sends: dict[str, list[tuple[float, int]]],  # node → plugin sends (time, healthy)
    attempts: dict[str, Attempts],
    pods: Iterable[str] | None = None,
) -> list[float]:
    """"An IP became usable on a node" → "a pending pod bound there", from the logs:
    for each binding of a pod that was refused before (it waited), the time since the
    last rise of its node's healthy count (the plugin's send; healthy = in use +
    usable now, so only a floor or cooldown end or room for a refill raises it) that
    came after its first refusal. This is the whole chain: the agent's tally, the
    plugin, the kubelet's status loop, kube-scheduler's queue and the extender.
    (Polling the Node, as ``Run.waits`` does, can pair a binding with an older rise
    when the binding is seen before the rise that caused it.)"""
    ups = {node: rises(s) for node, s in sends.items()}
    keep = None if pods is None else set(pods)
    out = []
    for pod, a in attempts.items():
        if keep is not None and pod not in keep:
            continue
        if a.bound is None or not a.failed or min(a.failed) > a.bound:
            continue
        rise = latest_before(ups.get(a.node, []), a.bound)
        if rise is not None and rise > min(a.failed):
            out.append(a.bound - rise)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.capacity_trace DIR``: ``rise_to_bound`` of a kept run."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m bench.capacity_trace")
    parser.add_argument("dir", type=Path, help="a directory bench.capacity kept")
    parser.add_argument("--year", type=int, default=dt.datetime.now(dt.UTC).year)
    args = parser.parse_args(argv)
    sends: dict[str, list[tuple[float, int]]] = {}
    for log in sorted(args.dir.glob("tke-eni-agent-*.log")):
        text = log.read_text(errors="replace")
        node = re.search(r'"node_name": "([^"]+)"', text)
        sends[node.group(1) if node else log.stem] = dp_sends(text)
    attempts = scheduler_attempts(
        (args.dir / "cp-kube-scheduler.log").read_text(errors="replace"), args.year)
    waits = rise_to_bound(sends, attempts)
    print(f"plugin rise → bound: p50 {pct(waits, 50):.2f} s / p99 {pct(waits, 99):.2f} s / "
          f"max {max(waits, default=float('nan')):.2f} s (n={len(waits)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
