"""``tke-localcluster demo`` and ``tke-localcluster stop`` for the whole environment
(localrun.cli delegates here).

demo: start ``python -m localrun.supervisor`` in its own session (it owns the environment
and keeps it up), show its progress until it is ready, then return. stop: SIGTERM the
supervisor and wait for its clean stop; if it is gone (killed), sweep what it left: every
process whose command line names the work dir, the nodes' namespaces, cgroups and mounts,
the fabric namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from localcluster.process import process_start_ticks
from localnode import mounts, netns
from localnode.node import Node
from localnode.proc import kill_and_wait, pids_with_arg
from localrun.eipfabric import internet_netns

ROOT = Path(__file__).resolve().parents[2]
#: lines the supervisor prints when the demo is shown / failed (the end of ``demo``)
READY_MARKER = "=== tke-localcluster demo: READY ==="
FAILED_MARKER = "=== tke-localcluster demo: FAILED ==="
SUPERVISOR_FILE = "supervisor.json"


def demo_dir(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "demo"


def _supervisor(workdir: Path) -> tuple[int, int | None] | None:
    try:
        raw = json.loads((workdir / SUPERVISOR_FILE).read_text())
    except (OSError, ValueError):
        return None
    return int(raw["pid"]), raw.get("start_ticks")


def _alive(rec: tuple[int, int | None] | None) -> bool:
    if rec is None:
        return False
    pid, ticks = rec
    return process_start_ticks(pid) is not None and process_start_ticks(pid) == ticks


def demo(state_dir: Path, stop_command: str, kwok_nodes: int = 2) -> int:
    workdir = demo_dir(state_dir)
    if _alive(_supervisor(workdir)):
        print(f"a demo is already running (state {workdir}); stop it first: {stop_command}",
              file=sys.stderr)
        return 1
    if workdir.exists():
        sweep(workdir)  # what a killed earlier run left
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    log_path = workdir / "demo.log"
    path = f"{ROOT}:{ROOT / 'testbed'}:{os.environ.get('PYTHONPATH', '')}".rstrip(":")
    env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localrun.supervisor", "--workdir", str(workdir),
             "--stop-command", stop_command, "--kwok-nodes", str(kwok_nodes)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env, cwd=ROOT)
    (workdir / SUPERVISOR_FILE).write_text(json.dumps(
        {"pid": proc.pid, "start_ticks": process_start_ticks(proc.pid)}))
    print(f"starting the local environment (log {log_path}) ...", flush=True)
    try:
        return _follow(proc, log_path)
    except KeyboardInterrupt:
        print(f"\nthe environment goes on starting in the background (log {log_path}); "
              f"stop it with: {stop_command}", file=sys.stderr)
        return 130


def _follow(proc: subprocess.Popen[bytes], log_path: Path) -> int:
    """Print the supervisor's output until it is ready, fails or exits."""
    with log_path.open("r", errors="replace") as f:
        while True:
            line = f.readline()
            if line:
                if line.strip() == READY_MARKER:
                    return 0
                print(line, end="", flush=True)
                if line.strip() == FAILED_MARKER:
                    proc.wait()
                    return 1
                continue
            if proc.poll() is not None:
                print(f.read(), end="")
                return proc.returncode or 1
            time.sleep(0.1)


def status(state_dir: Path) -> list[str] | None:
    """Lines describing a running demo, or None when none runs."""
    workdir = demo_dir(state_dir)
    rec = _supervisor(workdir)
    if not _alive(rec):
        return None
    assert rec is not None
    lines = [f"demo environment running (supervisor pid {rec[0]}, state {workdir})"]
    try:
        state = json.loads((workdir / "environment.json").read_text())
    except (OSError, ValueError):
        return [*lines, "  still starting (see demo.log)"]
    lines.append(f"  nodes: {', '.join(state.get('nodes') or {})}; emulator {state['emulator']}")
    lines.append(f"  kubeconfig: {state['kubeconfig']}")
    return lines


def stop(state_dir: Path, keep: bool = False, timeout: float = 180.0) -> list[str]:
    """Stop the demo environment; returns what was done (for the CLI to print)."""
    workdir = demo_dir(state_dir)
    if not workdir.exists():
        return []
    done = []
    rec = _supervisor(workdir)
    if rec is not None and _alive(rec):
        print("stopping the demo environment (nodes and their pods, control plane, "
              "emulator) ...", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec[0], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(rec) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(rec):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec[0], signal.SIGKILL)
            done.append("supervisor (killed after timeout)")
        else:
            done.append("demo environment")
    left = sweep(workdir)
    if left:
        done.append(f"swept leftovers: {', '.join(left)}")
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return done


def sweep(workdir: Path) -> list[str]:
    """Remove what a killed environment left: processes naming ``workdir``, node
    namespaces/cgroups/mounts, the control plane's network namespace, the fabric. Returns
    what it found."""
    found: list[str] = []
    try:
        state = json.loads((workdir / "environment.json").read_text())
    except (OSError, ValueError):
        state = {}
    pids = pids_with_arg(str(workdir))
    if pids:
        found.append(f"{len(pids)} process(es)")
        kill_and_wait(pids)
    for name, n in (state.get("nodes") or {}).items():
        node = Node(name, "", None, Path(n["workdir"]), netns_name=n["netns"],
                    cgroup_root=n["cgroup"])
        if netns.exists(node.netns_name):
            found.append(f"node {name}")
        node.sweep_stale()
        mounts.unmount_all(node.workdir)
    fabric = state.get("fabric")
    inet = internet_netns(fabric) if fabric else None  # the EIPs' internet (localrun.eipfabric)
    for ns in (state.get("cp_netns"), inet, fabric):
        if ns and netns.exists(ns):
            found.append(f"netns {ns}")
            kill_and_wait(netns.pids_in(ns))  # the apiserver endpoint, kube-proxy, scheduler
            netns.delete(ns)
    return found
