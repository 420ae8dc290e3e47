"""The background owner of a demo environment (``python -m localrun.supervisor``).

``tke-localcluster demo`` starts this process in its own session; it starts the
Environment, runs the demo, prints ``READY_MARKER`` and keeps everything up (the ENI
plumber runs in it) until SIGTERM/SIGINT, then stops it all and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from localcluster.binaries import bin_dir
from localrun import demo
from localrun.environment import Environment
from localrun.lifecycle import FAILED_MARKER, READY_MARKER

log = logging.getLogger("localrun.supervisor")


class Interrupted(BaseException):
    """SIGTERM/SIGINT while starting: unwind and stop what started."""


def say(text: str) -> None:
    print(text, flush=True)


def how_to_use(env: Environment, stop_command: str) -> str:
    assert env.cp is not None
    return "\n".join([
        f"\nThe cluster stays up. kubectl (and etcd, kube-*) are in {bin_dir()}:",
        f"  export KUBECONFIG={env.cp.kubeconfig} PATH={bin_dir()}:$PATH",
        "  kubectl get nodes,pods -o wide; kubectl get veni,vip,vipc -A",
        "  kubectl -n kube-system get pods -o wide   # our components, pods of deploy/",
        "  kubectl -n kube-system logs deployment/tke-eni-ipamd   # or exec, rollout, edit ...",
        f"Logs: kubectl logs; the nodes' and control plane's under {env.workdir} "
        "(nodes/<node>/*.log, cluster/logs/)",
        f"Stop everything (nodes, netns, mounts, processes): {stop_command}"])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localrun.supervisor")
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--stop-command", default="tke-localcluster stop")
    p.add_argument("--kwok-nodes", type=int, default=2)
    p.add_argument("--no-demo", action="store_true", help="start the environment only")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:
            raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    env = Environment(args.workdir, kwok_nodes=args.kwok_nodes, prefix="tkd", progress=say)
    code = 0
    try:
        env.start()
        if not args.no_demo:
            demo.run(env, say)
        starting = False
        say("\n=== Phase timings ===")
        say(env.phases.table())
        assert env.cp is not None
        say(how_to_use(env, args.stop_command))
        say(READY_MARKER)
        while not stop.wait(1.0):
            pass
    except Interrupted:
        say("interrupted: stopping")
        code = 130
    except Exception:  # noqa: BLE001 - report, then stop everything
        say(traceback.format_exc())
        say(env.logs())
        say(FAILED_MARKER)
        code = 1
    finally:
        starting = False
        problems = env.stop()
        say("stop: " + ", ".join(f"{what} {t:.1f}s" for what, t in env.stop_timings))
        if problems:
            say(f"clean-up problems: {problems}")
        say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
