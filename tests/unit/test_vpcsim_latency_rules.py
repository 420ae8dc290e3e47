"""The emulator's named latency profiles (vpcsim.latency): validation, how a profile
fills the fault knobs, and that calls and async tasks take the profile's figures
(the sleep is recorded, the task's end time read: no clock assertions)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from vpcsim import latency, tasks, vpc_eni
from vpcsim.api import Api, Credential
from vpcsim.context import Ctx
from vpcsim.faults import Faults
from vpcsim.spec import DEFAULT_SPEC, build


def test_profiles_are_complete_and_sane() -> None:
    assert {"none", "cloud", "cloud-slow"} <= set(latency.PROFILES)
    cloud = latency.get("cloud")
    for action in ("CreateNetworkInterface", "AttachNetworkInterface",
                   "AssignPrivateIpAddresses", "DescribeNetworkInterfaces",
                   "DescribeVpcTaskResult", "DescribeInstances"):
        assert latency.figure(cloud.call_ms, action) > 0, action
    for action in ("CreateNetworkInterface", "AttachNetworkInterface",
                   "AssignPrivateIpAddresses"):
        assert latency.figure(cloud.task_ms, action) > 0, action
    # an attach (hot-plug) is the slowest step; describes answer faster than writes
    assert cloud.task_ms["AttachNetworkInterface"] == max(cloud.task_ms.values())
    assert cloud.call_ms["DescribeNetworkInterfaces"] < cloud.call_ms["CreateNetworkInterface"]
    slow = latency.get("cloud-slow")
    assert all(slow.task_ms[k] == 3 * v for k, v in cloud.task_ms.items())
    assert latency.get("") is latency.NONE
    with pytest.raises(ValueError, match=r"unknown latency profile 'fast'.*cloud"):
        latency.get("fast")


def test_selecting_a_profile_fills_the_tables_and_clearing_empties_them() -> None:
    f = Faults()
    f.update({"profile": "cloud"})
    assert f.profile == "cloud" and f.jitter_ratio == latency.CLOUD.jitter_ratio
    assert f.task_ms["AttachNetworkInterface"] == latency.CLOUD.task_ms["AttachNetworkInterface"]
    # fields given with the profile override its figures, whatever their order
    f.update({"task_ms": {"*": 10}, "profile": "cloud-slow", "jitter_ratio": 0})
    assert f.profile == "cloud-slow" and f.task_ms == {"*": 10.0} and f.jitter_ratio == 0
    assert f.call_ms == dict(latency.CLOUD_SLOW.call_ms)
    f.update({"profile": ""})
    assert (f.profile, f.call_ms, f.task_ms, f.jitter_ratio) == ("", {}, {}, 0.0)
    assert json.loads(json.dumps(f.to_dict()))["profile"] == ""


@pytest.mark.parametrize("bad", [
    {"profile": "fast"}, {"profile": 3}, {"call_ms": [1]}, {"call_ms": {"X": -1}},
    {"task_ms": {"X": "slow"}}, {"task_ms": {"": 1}}, {"task_ms": {"X": True}},
    {"jitter_ratio": 2}, {"profile": "cloud", "latency_ms": -1},
])
def test_bad_input_is_refused_and_changes_nothing(bad: dict[str, Any]) -> None:
    f = Faults()
    f.update({"latency_ms": 7})
    before = f.to_dict()
    with pytest.raises(ValueError):
        f.update(bad)
    assert f.to_dict() == before


def test_figures_per_action_with_jitter_bounds() -> None:
    f = Faults.from_dict({"profile": "cloud"})
    rng = random.Random(1)
    j = latency.CLOUD.jitter_ratio
    for action, table in (("AttachNetworkInterface", latency.CLOUD.task_ms),
                          ("SomeOtherWrite", latency.CLOUD.task_ms)):
        want = latency.figure(table, action) / 1000
        got = [f.task_delay_s(action, rng) for _ in range(200)]
        assert all(want * (1 - j) <= g <= want * (1 + j) for g in got), action
        assert len(set(got)) > 1  # spread, not a constant
    # without a profile: task_delay_ms for every action, latency_ms only where `actions` say
    plain = Faults(task_delay_ms=20, latency_ms=30, actions=["DescribeSubnets"])
    assert plain.task_delay_s("AttachNetworkInterface", rng) == pytest.approx(0.02)
    assert plain.call_delay_s("DescribeSubnets", rng) == pytest.approx(0.03)
    assert plain.call_delay_s("DescribeInstances", rng) == 0


def test_an_attach_task_runs_for_the_profiles_attach_time() -> None:
    world = build(DEFAULT_SPEC)
    faults = Faults.from_dict({"profile": "cloud", "jitter_ratio": 0})
    create = Ctx(world, "req-create", faults, random.Random(0), "CreateNetworkInterface")
    before = time.monotonic()
    with world.lock:
        eni_id = vpc_eni.create(create, {
            "VpcId": "vpc-sim00001", "SubnetId": "subnet-sim00033",
            "NetworkInterfaceName": "n"})["NetworkInterface"]["NetworkInterfaceId"]
    assert world.tasks["req-create"].done_at >= before + 1.0  # the create task: 1000 ms
    world.tasks["req-create"].done_at = 0  # let it finish now
    attach = Ctx(world, "req-attach", faults, random.Random(0), "AttachNetworkInterface")
    with world.lock:
        tasks.advance(world)
        before = time.monotonic()
        vpc_eni.attach(attach, {"NetworkInterfaceId": eni_id, "InstanceId": "ins-sim00001"})
    assert world.tasks["req-attach"].done_at >= before + 2.5


def test_the_api_sleeps_the_calls_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("vpcsim.api.time.sleep", slept.append)
    faults = Faults.from_dict({"profile": "cloud", "jitter_ratio": 0, "rate_limits": False})
    api = Api(build(DEFAULT_SPEC), faults, {"AKIDtest": Credential("secret")}, seed=1)
    api._faults_before("DescribeNetworkInterfaces")
    api._faults_before("AttachNetworkInterface")
    assert slept == [pytest.approx(latency.CLOUD.call_ms["DescribeNetworkInterfaces"] / 1000),
                     pytest.approx(latency.CLOUD.call_ms["AttachNetworkInterface"] / 1000)]
    faults.update({"profile": ""})
    api._faults_before("DescribeNetworkInterfaces")
    assert len(slept) == 2  # no profile, no latency_ms: no sleep at all
