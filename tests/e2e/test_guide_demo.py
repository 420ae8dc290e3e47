"""The README's first command, as a user runs it: ``tke-localcluster demo`` sets up the whole
environment, shows the guide's workloads (VPC IPs, ENIs, a cross-node ping, the static IP
surviving a delete) and leaves it up with a kubeconfig; ``tke-localcluster stop`` removes
everything (processes, network namespaces, mounts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from localnode import netns
from localnode.proc import pids_with_arg
from localrun.kube import Kube

pytestmark = pytest.mark.e2e


def cli(state: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "localrun.cli", "--state-dir", str(state),
                           *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "TKE_LOCALCLUSTER_LOG_LEVEL": "WARNING"})


def test_demo_runs_the_guide_and_stop_removes_everything(tmp_path: Path) -> None:
    state = Path("/var/lib/tke-e2e") / f"demo-{tmp_path.name[-6:]}"
    try:
        demo = cli(state, "demo", "--kwok-nodes", "1")
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out
        for want in ("==> control plane", "=== Nodes", "=== Pods", "=== ENIs ipamd attached",
                     "=== VPC IPs", "0% packet loss", "HTTP: Welcome to nginx!", "(SAME IP)",
                     "=== Phase timings ===", "export KUBECONFIG=", "tke-localcluster --state-dir"):
            assert want in out, f"{want!r} missing from the demo output:\n{out}"
        # every component is a pod of deploy/ from our image, Running on the real nodes
        section = out.split("=== Our components", 1)[1].split("===", 2)[1]
        for name in ("tke-eni-agent-", "tke-eni-ipamd-", "tke-eni-ip-scheduler-",
                     "tke-eni-ip-webhook-"):
            rows = [r for r in section.splitlines() if r.strip().startswith(name)
                    and "-certs-" not in r]
            assert rows and all(" Running " in r and " node-" in r for r in rows), (name, section)
        kubeconfig = Path(re.search(r"export KUBECONFIG=(\S+)", out).group(1))  # type: ignore[union-attr]
        server = re.search(r"server: (\S+)", kubeconfig.read_text()).group(1)  # type: ignore[union-attr]
        kube = Kube(kubeconfig, server)
        names = {p["metadata"]["name"].split("-")[0] for p in kube.pods()}
        assert names - {"pinger"} == {"nginx", "busybox"}, names  # pinger: when needed
        status = cli(state, "status")
        assert status.returncode == 0 and "demo environment running" in status.stdout, status
        assert str(kubeconfig) in status.stdout
        again = cli(state, "demo")
        assert again.returncode == 1 and "already running" in again.stderr, again.stderr
    finally:
        stop = cli(state, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "stopped demo environment" in stop.stdout, stop.stdout
    assert not pids_with_arg(str(state)), "processes left after stop"
    assert not [n for n in ("tkd-fabric", "tkd-cp", "tkd-node-a", "tkd-node-b", "tkd-node-c")
                if netns.exists(n)]
    assert not (state / "demo").exists()
    state.rmdir()  # empty: stop removed what the demo made
