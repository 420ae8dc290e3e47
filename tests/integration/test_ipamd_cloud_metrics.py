"""ipamd's ``/metrics`` serves the cloud client's series (``tke_cloud_*``) beside
its own: a real ``tke-eni-ipamd`` process against the kube-apiserver and the
cloud emulator, scraped while it calls the emulator (issue 12)."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.ipamd_process import IpamdProcess
from harness.ipamd_world import POD_SUBNET3
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, wait_for
from vpcsim.testing import EmulatorHandle


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def sample(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


def test_metrics_endpoint_serves_the_cloud_client_series(
    kube: Kube, emu: EmulatorHandle, tmp_path: Path
) -> None:
    port = free_port()
    proc = IpamdProcess(
        emu, kube.kubeconfig, tmp_path / "ipamd.log", "--leader-elect", "false",
        "--metrics-address", f"127.0.0.1:{port}",
    )
    try:
        proc.start()
        kube.add_node("n1", "ins-sim00001")
        wait_for("ipamd serves n1", lambda: len(kube.vpcips("n1")) == 5, 60)
        text = scrape(port)
        assert sample(text, "tke_ipamd_"), f"ipamd's own series missing:\n{text[:2000]}"
        calls = sample(text, "tke_cloud_api_calls_total{")
        assert any('action="CreateNetworkInterface"' in line for line in calls), (
            f"no tke_cloud_api_calls_total for CreateNetworkInterface on /metrics; "
            f"tke_cloud_ lines: {sample(text, 'tke_cloud_')}"
        )
        assert sample(text, "tke_cloud_api_latency_seconds_bucket{")
        assert sample(text, "tke_cloud_task_wait_seconds_count{")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- ipamd log ---\n{proc.log_tail(40)}") from exc
    finally:
        proc.stop()
