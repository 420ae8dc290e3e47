"""Start/stop of the local control plane: readiness, teardown, failures, the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from localcluster import binaries
from localcluster.binaries import SETUP_STEP, BinariesMissingError, k8s_binaries
from localcluster.controlplane import ControlPlane, ControlPlaneError
from localcluster.process import group_members, process_alive
from tests.fixtures_controlplane import ControlPlaneFactory

REPO = Path(__file__).resolve().parents[2]


def _pins_from_versions_env() -> dict[str, str]:
    pins = {}
    for line in (REPO / "hack/k8s/versions.env").read_text().splitlines():
        if re.match(r"^[A-Z0-9_]+=", line):
            key, _, value = line.partition("=")
            pins[key] = value
    return pins


def test_python_pins_match_build_pins() -> None:
    pins = _pins_from_versions_env()
    assert pins["K8S_VERSION"] == binaries.K8S_VERSION
    assert pins["ETCD_VERSION"] == binaries.ETCD_VERSION
    assert pins["KWOK_VERSION"] == binaries.KWOK_VERSION
    assert pins["CNITOOL_VERSION"] == binaries.CNITOOL_VERSION


def test_cached_binaries_report_pinned_versions() -> None:
    try:
        bins = k8s_binaries()
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    for path in (bins.kube_apiserver, bins.kube_scheduler, bins.kubelet):
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"Kubernetes {binaries.K8S_VERSION}", path
    out = subprocess.run([str(bins.kubectl), "version", "--client"], capture_output=True,
                         text=True, check=True)
    assert f"Client Version: {binaries.K8S_VERSION}" in out.stdout
    out = subprocess.run([str(bins.etcd), "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {binaries.ETCD_VERSION[1:]}" in out.stdout
    out = subprocess.run([str(bins.kwok), "--version"], capture_output=True, text=True, check=True)
    assert binaries.KWOK_VERSION in out.stdout


def test_missing_cache_fails_naming_the_setup_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(binaries.CACHE_ENV, str(tmp_path / "empty-cache"))
    with pytest.raises(BinariesMissingError, match=re.escape(SETUP_STEP)):
        k8s_binaries()
    cp = ControlPlane(tmp_path / "cp")
    with pytest.raises(BinariesMissingError, match=re.escape(SETUP_STEP)):
        cp.start()
    assert cp.processes == {}


def test_failed_build_names_the_setup_step(tmp_path: Path) -> None:
    # An empty cache and a Go module proxy that refuses connections (a closed
    # loopback port): the first step, installing the Go toolchain, fails.
    env = {**os.environ, "TKE_K8S_CACHE": str(tmp_path / "cache"), "GOPROXY": "http://127.0.0.1:9"}
    build = subprocess.run(
        [str(REPO / "hack/k8s/build.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert build.returncode != 0
    assert "FAILED: go toolchain" in build.stderr
    assert "hack/setup.sh step: k8s build" in build.stderr
    assert not (tmp_path / "cache" / binaries.K8S_VERSION / "bin" / "VERSIONS").exists()


def test_component_failing_to_start_fails_with_its_log_and_leaves_nothing(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "cp", apiserver_args=["--no-such-flag"], ready_timeout=30)
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    message = str(err.value)
    assert "kube-apiserver exited with code" in message
    assert "no-such-flag" in message  # the log tail names the problem
    for name, proc in cp.processes.items():
        assert not process_alive(proc.pid), f"{name} pid {proc.pid} survived a failed start"


def test_no_process_survives_teardown(control_plane_factory: ControlPlaneFactory) -> None:
    cp = control_plane_factory(with_scheduler=True, kwok_nodes=2)
    pids = cp.pids()
    assert set(pids) == {"etcd", "kube-apiserver", "kube-scheduler", "kwok"}
    assert all(process_alive(pid) for pid in pids.values())
    print(f"ready in {cp.timings.total:.1f}s: {cp.timings}")
    control_plane_factory.close(keep_files=False)  # what the fixture's teardown runs
    survivors = {name: pid for name, pid in pids.items()
                 if process_alive(pid) or group_members(pid)}
    assert survivors == {}
    assert not cp.workdir.exists()
    cp.stop()  # idempotent


def test_cli_up_status_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "TKE_LOCALCLUSTER_LOG_LEVEL": "WARNING"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localrun.cli", "--state-dir", str(state), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    up = cli("up", "--kwok-nodes", "1")
    pids: list[int] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        kubeconfig = state / "cluster" / "admin.kubeconfig"
        assert f"kubeconfig: {kubeconfig}" in up.stdout
        status = cli("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "apiserver https://127.0.0.1:" in status.stdout and "ready" in status.stdout
        pids = [int(p) for p in re.findall(r"pid (\d+)", status.stdout)]
        assert len(pids) == 3  # etcd, kube-apiserver, kwok
        again = cli("up")
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = cli("stop")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped kwok, kube-apiserver, etcd" in down.stdout
    assert not [p for p in pids if process_alive(p)]
    assert not (state / "cluster").exists()
    status = cli("status")
    assert status.returncode == 1 and "no cluster recorded" in status.stdout
