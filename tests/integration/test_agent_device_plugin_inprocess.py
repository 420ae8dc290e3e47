"""``tke-eni-agent --device-plugin=true``: the device plugin served in the
agent's process (docs/node.md, "Footprint") behaves as the separate
``tke-eni-device-plugin`` does — it registers with the kubelet (stand-in,
real gRPC), ListAndWatch carries the agent's usable IPs through the capacity
file, its /healthz, /readyz and /metrics answer on its own address — while the
agent serves CNI calls; SIGTERM stops both cleanly (exit 0, the plugin's
socket removed). A bad TKE_ENI_DP_* setting fails the start and names it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.names import RESOURCE_ENI_IP
from harness.kubelet import KubeletStandin
from tests.fixtures_netns import PYTHON, AgentFactory, NetnsSet, Vpc, run_plugin

R = RESOURCE_ENI_IP
S5_LARGE8 = 27  # (4 - 1) x (10 - 1)
WAIT = 60.0  # a bound that only ends a hung test
DP_ADDRESS = "127.0.0.1:19962"  # in the node netns


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dpi-", dir="/tmp")  # short: unix socket paths <= 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    k = KubeletStandin(plugin_dir).start()
    yield k
    k.stop()


def dp_env(monkeypatch: pytest.MonkeyPatch, plugin_dir: str, capfile: Path) -> None:
    for key, value in {
        "TKE_ENI_DP_DEVICE_PLUGIN_DIR": plugin_dir,
        "TKE_ENI_DP_INSTANCE_ID": "ins-inproc",
        "TKE_ENI_DP_INSTANCE_TYPE": "S5.LARGE8",
        "TKE_ENI_DP_ZONE": "ap-guangzhou-3",
        "TKE_ENI_DP_LIMITS_SOURCE": "table",
        "TKE_ENI_DP_CAPACITY_FILE": str(capfile),
        "TKE_ENI_DP_METRICS_BIND_ADDRESS": DP_ADDRESS,
    }.items():
        monkeypatch.setenv(key, value)


def http_get(ns: str, path: str) -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = urllib.request.urlopen('http://{DP_ADDRESS}{path}', timeout=10)\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    out = subprocess.run(
        ["ip", "netns", "exec", ns, PYTHON, "-c", code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, _, body = out.stdout.partition("\n")
    return int(status), body


def test_device_plugin_in_the_agent_process(
    vpc: Vpc,
    netns_set: NetnsSet,
    agents: AgentFactory,
    kubelet: KubeletStandin,
    plugin_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capfile = tmp_path / "dp" / "eni-ip-capacity"
    dp_env(monkeypatch, plugin_dir, capfile)
    node = vpc.add_node(1, [["10.33.0.2", "10.33.0.10", "10.33.0.11"]])
    agent = agents(node, "--device-plugin=true", "--device-plugin-capacity-file", str(capfile))

    # registered; ListAndWatch: the table's 27 devices, healthy = the agent's 2 warm IPs
    ok = kubelet.wait_capacity(R, S5_LARGE8, 2, timeout=WAIT)
    content = capfile.read_text() if capfile.exists() else "<no file>"
    assert ok, f"kubelet has {kubelet.capacity(R)}/{kubelet.allocatable(R)}; capacity file:\n" \
        f"{content}\nagent:\n{agent.logs()[-3000:]}"  # fmt: skip

    # the agent serves CNI calls meanwhile
    pod_ns = netns_set.add("dpi")
    conf = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
    add = run_plugin(agent.plugin, "ADD", conf, container_id="c1",
                     netns=f"/run/netns/{pod_ns}", caller_ns=node.ns)  # fmt: skip
    assert add.rc == 0 and add.out, add.stdout + agent.logs()[-3000:]

    # the plugin's own status endpoints, on its own address
    assert http_get(node.ns, "/healthz")[0] == 200
    assert http_get(node.ns, "/readyz")[0] == 200
    status, metrics = http_get(node.ns, "/metrics")
    assert status == 200 and "tke_eni_device_plugin_capacity" in metrics, metrics[:500]

    # SIGTERM: both stop cleanly, the plugin's socket is gone
    socket_file = Path(plugin_dir) / "tke-eni-ip.sock"
    assert socket_file.exists()
    agent.kill(signal.SIGTERM)
    assert agent.wait_exit() == 0, agent.logs()[-3000:]
    assert not socket_file.exists(), os.listdir(plugin_dir)


def test_a_bad_device_plugin_setting_fails_the_start(
    vpc: Vpc,
    agents: AgentFactory,
    plugin_dir: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dp_env(monkeypatch, plugin_dir, tmp_path / "cap")
    monkeypatch.setenv("TKE_ENI_DP_LIMITS_SOURCE", "guess")
    node = vpc.add_node(2, [["10.34.0.2", "10.34.0.10"]])
    agent = agents(node, "--device-plugin=true", start=False)
    agent.start(wait=False)
    assert agent.wait_exit() == 1
    logs = agent.logs()
    assert "TKE_ENI_DP_LIMITS_SOURCE" in logs and "--device-plugin" in logs, logs[-2000:]
    assert not (agent.workdir / "bin" / "tke-route-eni").exists()  # nothing installed
