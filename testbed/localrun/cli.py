"""``tke-localcluster``: start, inspect and stop a local control plane in the background.

    tke-localcluster up [--scheduler] [--scheduler-config FILE] [--kwok-nodes N]
    tke-localcluster status
    tke-localcluster down        (alias: stop)
    tke-localcluster demo        (the whole local run, left up: emulated VPC, control plane
                                  with the extender, ipamd, real nodes, the guide's
                                  workloads; docs/local-run.md)

The cluster's processes outlive the command; their pids, ports and the admin
kubeconfig are kept in ``<state-dir>/cluster`` (``--state-dir``, env
``TKE_LOCALCLUSTER_STATE_DIR``, default ``/tmp/tke-localcluster``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from localcluster.binaries import BinariesMissingError, bin_dir
from localcluster.controlplane import ControlPlane, ControlPlaneError
from localcluster.state import RunningCluster
from localrun import lifecycle

log = logging.getLogger("tke-localcluster")

DEFAULT_STATE_DIR = "/tmp/tke-localcluster"  # noqa: S108 - documented, overridable


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not an integer") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tke-localcluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", type=Path,
                   default=Path(os.environ.get("TKE_LOCALCLUSTER_STATE_DIR") or DEFAULT_STATE_DIR),
                   help="where a running cluster keeps its files "
                        "(env TKE_LOCALCLUSTER_STATE_DIR; default %(default)s)")
    p.add_argument("--log-level", default=os.environ.get("TKE_LOCALCLUSTER_LOG_LEVEL", "INFO"),
                   help="env TKE_LOCALCLUSTER_LOG_LEVEL; default %(default)s")
    sub = p.add_subparsers(dest="command", required=True)

    def start_options(sp: argparse.ArgumentParser, kwok_default: int, scheduler: bool) -> None:
        sp.add_argument("--scheduler", action=argparse.BooleanOptionalAction, default=scheduler,
                        help="also run kube-scheduler (default %(default)s)")
        sp.add_argument("--scheduler-config", type=Path,
                        default=os.environ.get("TKE_LOCALCLUSTER_SCHEDULER_CONFIG") or None,
                        help="KubeSchedulerConfiguration YAML (env "
                             "TKE_LOCALCLUSTER_SCHEDULER_CONFIG); clientConnection filled in")
        sp.add_argument("--kwok-nodes", type=int,
                        default=_env_int("TKE_LOCALCLUSTER_KWOK_NODES", kwok_default),
                        help="fake nodes managed by kwok (env TKE_LOCALCLUSTER_KWOK_NODES; "
                             "default %(default)s)")
        sp.add_argument("--ready-timeout", type=float,
                        default=float(os.environ.get("TKE_LOCALCLUSTER_READY_TIMEOUT") or 60),
                        help="seconds per component (env TKE_LOCALCLUSTER_READY_TIMEOUT; "
                             "default %(default)s)")

    start_options(sub.add_parser("up", help="start a control plane and leave it running"),
                  0, False)
    sub.add_parser("status", help="show the running control plane")
    for name in ("down", "stop"):
        down = sub.add_parser(name, help="stop the running control plane and remove its files")
        down.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    demo = sub.add_parser("demo", help="the whole local run, left up (docs/local-run.md)")
    demo.add_argument("--kwok-nodes", type=int,
                      default=_env_int("TKE_LOCALCLUSTER_KWOK_NODES", 2),
                      help="plain kwok nodes besides the real ones (env "
                           "TKE_LOCALCLUSTER_KWOK_NODES; default %(default)s)")
    return p


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).resolve() / "cluster"


def _up(args: argparse.Namespace) -> int:
    workdir = _workdir(args)
    running = RunningCluster.load(workdir)
    if running is not None and any(running.process_status().values()):
        print(f"a cluster is already running (kubeconfig {running.kubeconfig}); "
              f"stop it first: tke-localcluster --state-dir {args.state_dir} stop", file=sys.stderr)
        return 1
    if running is not None:
        running.stop(remove=True)  # stale state from a crashed run
    scheduler_config: dict[str, Any] | None = None
    if args.scheduler_config is not None:
        scheduler_config = yaml.safe_load(Path(args.scheduler_config).read_text())
    log.info("effective config: state_dir=%s scheduler=%s scheduler_config=%s kwok_nodes=%d "
             "ready_timeout=%.0fs binaries=%s", args.state_dir, args.scheduler,
             args.scheduler_config, args.kwok_nodes, args.ready_timeout, bin_dir())
    cp = ControlPlane(workdir, with_scheduler=args.scheduler, scheduler_config=scheduler_config,
                      kwok_nodes=args.kwok_nodes, ready_timeout=args.ready_timeout)
    try:
        cp.start()
    except BinariesMissingError as exc:
        print(f"tke-localcluster: {exc}", file=sys.stderr)
        return 1
    except ControlPlaneError as exc:
        print(f"tke-localcluster: {exc}\nlogs kept in {cp.logs_dir}", file=sys.stderr)
        return 1
    print(f"control plane ready in {cp.timings.total:.1f}s at {cp.server}")
    for name, pid in cp.pids().items():
        print(f"  {name:<15} pid {pid:<8} log {cp.log_path(name)}")
    print(f"kubeconfig: {cp.kubeconfig}")
    print(f"  export KUBECONFIG={cp.kubeconfig} PATH={bin_dir()}:$PATH   # kubectl, etcd, ...")
    if Path(args.state_dir) == Path(DEFAULT_STATE_DIR):
        print("stop it with: tke-localcluster stop   (or: make stop)")
    else:
        print(f"stop it with: tke-localcluster --state-dir {args.state_dir} stop")
    return 0


def _status(args: argparse.Namespace) -> int:
    demo = lifecycle.status(args.state_dir)
    for line in demo or []:
        print(line)
    running = RunningCluster.load(_workdir(args))
    if running is None and demo:
        return 0
    if running is None:
        print(f"no cluster recorded in {_workdir(args)}")
        return 1
    procs = running.process_status()
    ready, detail = running.apiserver_ready()
    for name, alive in procs.items():
        print(f"  {name:<15} pid {running.processes[name].pid:<8} "
              f"{'running' if alive else 'NOT RUNNING'}")
    print(f"apiserver {running.server}: {'ready' if ready else 'not ready: ' + detail}")
    print(f"kubeconfig: {running.kubeconfig}")
    return 0 if ready and all(procs.values()) else 1


def _stop_command(args: argparse.Namespace) -> str:
    if Path(args.state_dir) == Path(DEFAULT_STATE_DIR):
        return "tke-localcluster stop   (or: make stop)"
    return f"tke-localcluster --state-dir {args.state_dir} stop"


def _demo(args: argparse.Namespace) -> int:

    if os.geteuid() != 0:
        print("tke-localcluster demo: real nodes need root (network namespaces, mounts, "
              "cgroups); run it as root", file=sys.stderr)
        return 1
    return lifecycle.demo(args.state_dir, _stop_command(args), args.kwok_nodes)


def _down(args: argparse.Namespace) -> int:

    demo_done = lifecycle.stop(args.state_dir, keep=args.keep)
    for what in demo_done:
        print(f"stopped {what}")
    running = RunningCluster.load(_workdir(args))
    if running is None:
        if demo_done:
            return 0
        print(f"no cluster recorded in {_workdir(args)}: nothing to stop")
        return 0
    stopped = running.stop(remove=not args.keep)
    print(f"stopped {', '.join(stopped) or 'nothing (no process was running)'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "status":
            return _status(args)
        return _down(args)
    except BinariesMissingError as exc:
        print(f"tke-localcluster: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
