"""The eip resource in the agent's shape: ``tke-eni-agent --device-plugin=true``
builds its device plugin with ``cni.agent.devplugin.embedded()`` from the
``TKE_ENI_DP_*`` variables only (deploy/agent/daemonset.yaml sets
``TKE_ENI_DP_EIP=true``). Built that way, against the kubelet stand-in over real
gRPC and the emulator's EIP quota through the real SDK, it registers
tke.cloud.tencent.com/eip beside eni-ip and advertises the quota; stopped, both
sockets are gone. Without TKE_ENI_DP_EIP there is no eip resource."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from cni.agent.devplugin import embedded
from core.eip import RESOURCE_EIP
from core.names import RESOURCE_ENI_IP
from harness.kubelet import KubeletStandin
from vpcsim.testing import EmulatorHandle, run_emulator

S5_LARGE8 = 27


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dpx-", dir="/tmp")  # short: unix socket paths <= 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False}) as handle:
        for k, v in handle.client_env().items():  # the cloud credentials
            monkeypatch.setenv(k, v)
        yield handle


def dp_environ(plugin_dir: str, emu: EmulatorHandle, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TKE_ENI_DP_DEVICE_PLUGIN_DIR": plugin_dir,
            "TKE_ENI_DP_INSTANCE_ID": "ins-sim00001",
            "TKE_ENI_DP_INSTANCE_TYPE": "S5.LARGE8",
            "TKE_ENI_DP_ZONE": "ap-guangzhou-3",
            "TKE_ENI_DP_LIMITS_SOURCE": "table",
            "TKE_ENI_DP_REGION": emu.region,
            "TKE_ENI_DP_CLOUD_ENDPOINT": emu.url,
            "TKE_ENI_DP_METADATA_URL": "http://127.0.0.1:9/latest/meta-data/",
            "TKE_ENI_DP_METRICS_BIND_ADDRESS": "",
            **extra,
        }
    )
    return env


def test_eip_from_the_agents_environment(plugin_dir: str, emu: EmulatorHandle) -> None:
    with emu.emulator.world.lock:
        emu.emulator.world.eips.quota = 5
    env = dp_environ(plugin_dir, emu, TKE_ENI_DP_EIP="true", TKE_ENI_DP_EIP_QUOTA_INTERVAL="1")
    with KubeletStandin(plugin_dir) as kubelet:
        plugin = embedded(env)
        plugin.start()
        try:
            assert kubelet.wait_capacity(RESOURCE_ENI_IP, S5_LARGE8)
            assert kubelet.wait_capacity(RESOURCE_EIP, 5, 5, timeout=20)
            assert os.path.exists(os.path.join(plugin_dir, "tke-eip.sock"))
        finally:
            plugin.stop()
    assert not {"tke-eip.sock", "tke-eni-ip.sock"} & set(os.listdir(plugin_dir))


def test_no_eip_without_the_variable(plugin_dir: str, emu: EmulatorHandle) -> None:
    with KubeletStandin(plugin_dir) as kubelet:
        plugin = embedded(dp_environ(plugin_dir, emu))
        plugin.start()
        try:
            assert kubelet.wait_capacity(RESOURCE_ENI_IP, S5_LARGE8)
            assert kubelet.endpoint(RESOURCE_EIP) is None
        finally:
            plugin.stop()
