"""Allocatable tells the truth (issue 15): the agent's capacity feed (its pool
state and IP view, through the capacity file) and the device plugin (a real
``DevicePluginManager`` with the kubelet stand-in over real gRPC) agree on
``core.usable``: IPs cooling down are not Healthy, and the moment a cooldown
ends the kubelet gets a new ListAndWatch list with no other trigger.

No timed assertions: every wait is a generous bound for the expected value;
the latencies are printed."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.agent.capacity_file import CapacityFilePublisher
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp
from cni.agent.pool import Allocation, PoolState
from core.ids import EniId, IPv4
from core.models import SUBNET_ACTIVE, SubnetStatus
from core.names import RESOURCE_ENI_IP
from device_plugin.manager import DevicePluginManager
from device_plugin.settings import Settings
from harness.kubelet import KubeletStandin

R = RESOURCE_ENI_IP
S5_LARGE8 = 27  # (4 − 1) × (10 − 1)
ZONE = "ap-guangzhou-3"
WAIT = 60.0  # a bound that only ends a hung test


@pytest.fixture
def plugin_dir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="dpu-", dir="/tmp")  # short: unix socket paths ≤ 107 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def kubelet(plugin_dir: str) -> Iterator[KubeletStandin]:
    k = KubeletStandin(plugin_dir).start()
    yield k
    k.stop()


def node_view(n: int) -> tuple[EniInfo, list[NodeIp]]:
    eni = EniInfo(
        EniId("eni-usable1"), "02:00:00:00:01:01", "10.9.0.0/24", IPv4("10.9.0.1"), IPv4("10.9.0.2")
    )
    eni = EniInfo(eni.eni_id, eni.mac, eni.subnet_cidr, eni.gateway, eni.primary_ip, ZONE)
    return eni, [NodeIp(IPv4(f"10.9.0.{10 + i}"), eni.eni_id) for i in range(n)]


def subnet(available: int) -> list[SubnetStatus]:
    return [
        SubnetStatus(
            subnet_id="subnet-usable",
            zone=ZONE,
            cidr="10.9.0.0/24",
            available=available,
            total=253,
            state=SUBNET_ACTIVE,
        )
    ]


def pool_with(in_use: list[NodeIp], cooling: list[NodeIp], until: float) -> PoolState:
    state = PoolState()
    for i, ip in enumerate(in_use):
        state.allocations[ip.ip] = Allocation(
            ip.ip, ip.eni_id, f"c{i}", "eth0", f"/var/run/netns/p{i}", f"tke{i:011x}"
        )
    for ip in cooling:
        state.cooldown[ip.ip] = until
    return state


def start_plugin(plugin_dir: str, capfile: Path) -> DevicePluginManager:
    m = DevicePluginManager(
        Settings(
            device_plugin_dir=plugin_dir,
            instance_id="ins-usable",
            instance_type="S5.LARGE8",
            limits_source="table",
            capacity_file=str(capfile),
            metrics_bind_address="",
        )
    )
    m.start()
    return m


def healthy_now(kubelet: KubeletStandin) -> int | None:
    ep = kubelet.endpoint(R)
    return sum(1 for h in ep.devices.values() if h == "Healthy") if ep else None


@pytest.mark.parametrize(
    ("available", "first", "after"),
    [
        # zone exhausted: only the warm IPs are usable: 3 in use + 0 warm, then + 6
        (0, 3, 9),
        # zone has free IPs: ipamd can refill up to the limit, but the 6 cooling
        # ones still take slots: 27 − 6, then 27
        (50, S5_LARGE8 - 6, S5_LARGE8),
    ],
    ids=["zone-exhausted", "zone-has-free-ips"],
)
def test_cooling_ips_are_not_allocatable_and_their_end_reaches_the_kubelet(
    plugin_dir: str, kubelet: KubeletStandin, tmp_path: Path, available: int, first: int, after: int
) -> None:
    eni, ips = node_view(9)
    source = MemoryNodeIpSource()
    source.set_view([eni], ips)
    cooldown_end = time.time() + 4.0
    state = pool_with(ips[:3], ips[3:], cooldown_end)
    capfile = tmp_path / "eni-ip-capacity"
    publisher = CapacityFilePublisher(str(capfile), source, lambda: subnet(available))
    publisher.pool = lambda: state
    publisher.start()
    plugin = start_plugin(plugin_dir, capfile)
    try:
        ok = kubelet.wait_capacity(R, S5_LARGE8, first, timeout=WAIT)
        assert ok, (
            f"3 IPs in use, 6 cooling down: want {first} healthy of {S5_LARGE8}, the kubelet "
            f"has {healthy_now(kubelet)}; capacity file:\n{capfile.read_text()}"
        )
        assert time.time() < cooldown_end, "the cooldown ended before the first check"
        ok = kubelet.wait_capacity(R, S5_LARGE8, after, timeout=WAIT)
        seen = time.time()
        assert ok, (
            f"cooldown over: want {after} healthy, the kubelet has {healthy_now(kubelet)}; "
            f"capacity file:\n{capfile.read_text()}"
        )
        print(f"cooldown end -> kubelet's new list: {seen - cooldown_end:.3f} s")
    finally:
        plugin.stop()
        publisher.stop()
