"""The device plugin's second resource, tke.cloud.tencent.com/eip (--eip),
against the kubelet stand-in over real gRPC and the cloud emulator's EIP quota
through the real SDK: registered beside eni-ip on its own socket, the count
min(TOTAL_EIP_QUOTA, the node's eni-ip devices) and following both, kept while
the quota cannot be read, re-registered after a kubelet restart, Allocate
answering the device ids, and the socket removed on stop."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from core.eip import RESOURCE_EIP
from core.names import RESOURCE_ENI_IP
from device_plugin.manager import DevicePluginManager
from device_plugin.settings import Settings
from harness.kubelet import KubeletStandin
from vpcsim.testing import EmulatorHandle, run_emulator

S5_LARGE8 = 27


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dpe-", dir="/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False}) as handle:
        for k, v in handle.client_env().items():
            monkeypatch.setenv(k, v)
        yield handle


def set_quota(emu: EmulatorHandle, n: int) -> None:
    with emu.emulator.world.lock:
        emu.emulator.world.eips.quota = n


def test_eip_resource_follows_the_quota_and_the_node(plugin_dir: str, emu: EmulatorHandle) -> None:
    set_quota(emu, 7)
    settings = Settings(
        device_plugin_dir=plugin_dir,
        instance_id="ins-sim00001",
        instance_type="S5.LARGE8",
        limits_source="table",
        region=emu.region,
        cloud_endpoint=emu.url,
        metadata_url="http://127.0.0.1:9/latest/meta-data/",
        metrics_bind_address="",
        eip=True,
        eip_quota_interval=1.0,
    )
    with KubeletStandin(plugin_dir) as kubelet:
        manager = DevicePluginManager(settings)
        manager.start()
        try:
            assert kubelet.wait_capacity(RESOURCE_ENI_IP, S5_LARGE8)
            assert kubelet.wait_capacity(RESOURCE_EIP, 7, 7, timeout=20)
            resp = kubelet.allocate(RESOURCE_EIP, 1)
            assert resp.envs["TKE_EIP_DEVICE_IDS"].startswith("eip-")
            set_quota(emu, 3)
            assert kubelet.wait_capacity(RESOURCE_EIP, 3, timeout=20)
            manager.state.set_max_pods(2)  # the node's eni-ip devices bound it
            assert kubelet.wait_capacity(RESOURCE_EIP, 2, timeout=20)
            manager.state.set_max_pods(None)
            emu.set_faults(internal_error_ratio=1.0, actions=["DescribeAddressQuota"])
            assert kubelet.wait_capacity(RESOURCE_EIP, 3, timeout=20)  # kept while unreadable
            emu.clear_faults()
            kubelet.restart()
            assert kubelet.wait_capacity(RESOURCE_EIP, 3, timeout=20)
            assert manager.eip is not None and manager.eip.registrations >= 2
        finally:
            manager.stop()
        assert not os.path.exists(os.path.join(plugin_dir, "tke-eip.sock"))


def test_eip_off_by_default(plugin_dir: str) -> None:
    settings = Settings(
        device_plugin_dir=plugin_dir,
        instance_id="ins-sim00001",
        instance_type="S5.LARGE8",
        limits_source="table",
        metadata_url="http://127.0.0.1:9/latest/meta-data/",
        metrics_bind_address="",
    )
    with KubeletStandin(plugin_dir) as kubelet:
        manager = DevicePluginManager(settings)
        manager.start()
        try:
            assert kubelet.wait_capacity(RESOURCE_ENI_IP, S5_LARGE8)
            assert manager.eip is None and kubelet.endpoint(RESOURCE_EIP) is None
        finally:
            manager.stop()
