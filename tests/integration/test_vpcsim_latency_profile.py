"""Selecting a latency profile on a running emulator, as the local run does
(``POST /_admin/faults``, ``tke-vpcsim faults``), and what the SDK then sees: an
async task that stays RUNNING for the profile's time (read from the task's own
record, no clock assertion), and a bad profile refused with nothing changed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.ids import SubnetId, VpcId
from tests.emulator_client import cloud_for
from vpcsim import latency
from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


def test_the_admin_endpoint_selects_and_clears_a_profile(emu: EmulatorHandle) -> None:
    got = emu.admin("POST", "/_admin/faults", {"profile": "cloud"})
    assert got["profile"] == "cloud"
    assert got["task_ms"]["AttachNetworkInterface"] == latency.CLOUD.task_ms[
        "AttachNetworkInterface"]
    assert emu.admin("GET", "/_admin/faults")["call_ms"] == dict(latency.CLOUD.call_ms)
    before = emu.admin("GET", "/_admin/faults")
    req = urllib.request.Request(emu.url + "/_admin/faults", method="POST",
                                 data=json.dumps({"profile": "warp", "latency_ms": 1}).encode())
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 400
    assert "unknown latency profile 'warp'" in json.loads(err.value.read())["error"]
    assert emu.admin("GET", "/_admin/faults") == before  # nothing changed
    assert emu.admin("POST", "/_admin/faults", {"profile": ""})["task_ms"] == {}


def test_the_cli_selects_a_profile_and_tasks_take_its_time(emu: EmulatorHandle) -> None:
    exe = Path(sys.executable).parent / "tke-vpcsim"
    out = subprocess.run([str(exe), "faults", "--url", emu.url,
                          '{"profile": "cloud-slow", "jitter_ratio": 0}'],
                         capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(out.stdout)["profile"] == "cloud-slow"
    world = emu.emulator.world
    with world.lock:
        inst = next(iter(world.instances.values()))
        sub = next(s for s in world.subnets.values() if s.zone == inst.zone)
    cloud = cloud_for(emu)
    before = time.monotonic()
    eni = cloud.create_eni(vpc_id=VpcId(sub.vpc_id), subnet_id=SubnetId(sub.subnet_id),
                           name="profile")
    with world.lock:
        task = next(t for t in world.tasks.values() if t.eni_id == eni.eni_id)
        # the task ends the profile's create time after the call came in (jitter 0)
        want = latency.CLOUD_SLOW.task_ms["CreateNetworkInterface"] / 1000
        assert task.done_at >= before + want
        assert task.status == "SUCCESS"  # create_eni polled until it ended
