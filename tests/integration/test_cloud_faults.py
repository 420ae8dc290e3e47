"""Throttling, 5xx, InternalError and network errors: our retry/backoff;
async waits and FAILED tasks; the emulator's own rate limits."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cloud.adapter import TencentCloud
from cloud.errors import CloudError, TaskFailedError, TaskTimeoutError
from cloud.settings import CloudSettings
from core.ids import InstanceId, SubnetId, VpcId
from tests.emulator_client import cloud_for
from vpcsim.testing import EmulatorHandle, run_emulator

VPC = VpcId("vpc-sim00001")
POD3 = SubnetId("subnet-sim00033")
NODE1 = InstanceId("ins-sim00001")


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator() as handle:
        yield handle


def _metric(cloud: TencentCloud, name: str, **labels: str) -> float:
    return cloud.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    "fault",
    [
        {"throttle_ratio": 0.3},
        {"throttle_ratio": 0.3, "throttle_code": "LimitExceeded.ActionLimited"},
        {"error_5xx_ratio": 0.3},
        {"internal_error_ratio": 0.3},
    ],
)
def test_transient_faults_are_retried(emu: EmulatorHandle, fault: dict[str, object]) -> None:
    cloud = cloud_for(emu, max_attempts=12)
    emu.set_faults(**fault)
    before = _metric(cloud, "tke_cloud_api_calls_total", action="DescribeSubnets")
    for _ in range(10):
        assert len(cloud.describe_subnets(vpc_id=VPC)) == 4
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="f", secondary_ip_count=2)
    cloud.attach_eni(eni.eni_id, NODE1)
    cloud.assign_ips(eni.eni_id, count=3)
    emu.clear_faults()
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert len(seen.ips) == 6 and seen.instance_id == NODE1
    calls = _metric(cloud, "tke_cloud_api_calls_total", action="DescribeSubnets") - before
    assert calls > 10  # some were retried


def test_throttle_counted_by_code(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu, max_attempts=50)
    emu.set_faults(throttle_ratio=0.5, throttle_code="LimitExceeded.ActionLimited",
                   actions=["DescribeNetworkInterfaceLimit"])
    before = _metric(cloud, "tke_cloud_api_retries_total", action="DescribeNetworkInterfaceLimit",
                     code="LimitExceeded.ActionLimited")
    for _ in range(8):
        assert cloud.eni_limits(NODE1).enis == 4
    after = _metric(cloud, "tke_cloud_api_retries_total", action="DescribeNetworkInterfaceLimit",
                    code="LimitExceeded.ActionLimited")
    assert after > before


def test_gives_up_after_max_attempts(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu, max_attempts=3)
    emu.set_faults(throttle_ratio=1.0)
    with pytest.raises(CloudError) as err:
        cloud.describe_subnets(vpc_id=VPC)
    assert err.value.code == "RequestLimitExceeded"
    assert emu.emulator.api.calls["DescribeSubnets"] == 3


def test_permanent_errors_are_not_retried(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=SubnetId("subnet-sim00044"), name="z")
    with pytest.raises(CloudError) as err:
        cloud.attach_eni(eni.eni_id, NODE1)
    assert err.value.code == "UnsupportedOperation.ZoneMismatch"
    assert emu.emulator.api.calls["AttachNetworkInterface"] == 1


def test_emulator_rate_limit_is_enforced_and_survived(emu: EmulatorHandle) -> None:
    # the client ignores the documented limit; the emulator throttles; we retry
    greedy = cloud_for(emu, rate_overrides={"DescribeNetworkInterfaceLimit": 10_000},
                       max_attempts=30)
    before = _metric(greedy, "tke_cloud_api_errors_total", action="DescribeNetworkInterfaceLimit",
                     code="LimitExceeded.ActionLimited")
    for _ in range(40):
        greedy.eni_limits(NODE1)
    after = _metric(greedy, "tke_cloud_api_errors_total", action="DescribeNetworkInterfaceLimit",
                    code="LimitExceeded.ActionLimited")
    assert after > before


def test_client_side_limit_avoids_server_throttling(emu: EmulatorHandle) -> None:
    polite = cloud_for(emu, rate_fraction=0.5)
    before = _metric(polite, "tke_cloud_api_errors_total", action="DescribeNetworkInterfaceLimit",
                     code="LimitExceeded.ActionLimited")
    for _ in range(25):
        polite.eni_limits(NODE1)
    after = _metric(polite, "tke_cloud_api_errors_total", action="DescribeNetworkInterfaceLimit",
                    code="LimitExceeded.ActionLimited")
    assert after == before
    assert _metric(polite, "tke_cloud_ratelimit_wait_seconds_total",
                   action="DescribeNetworkInterfaceLimit") > 0


def test_connection_refused_is_a_network_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = CloudSettings(vpc_endpoint=f"127.0.0.1:{port}", cvm_endpoint=f"127.0.0.1:{port}",
                             protocol="http", secret_id="AKIDx", secret_key="k", max_attempts=2,
                             backoff_base_s=0.01)
    cloud = TencentCloud.from_settings(settings)
    with pytest.raises(CloudError) as err:
        cloud.describe_subnets(vpc_id=VPC)
    assert err.value.code == "ClientNetworkError"


@pytest.mark.parametrize(
    "action",
    ["CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
     "UnassignPrivateIpAddresses", "DetachNetworkInterface", "DeleteNetworkInterface",
     "MigratePrivateIpAddress"],
)
def test_failed_task_raises_with_output_and_rolls_back(emu: EmulatorHandle, action: str) -> None:
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="t", secondary_ip_count=2)
    other = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="o")
    if action in ("DetachNetworkInterface",):
        cloud.attach_eni(eni.eni_id, NODE1)
    before = emu.state()
    emu.set_faults(task_fail_ratio=1.0, actions=[action])
    with pytest.raises(TaskFailedError) as err:
        if action == "CreateNetworkInterface":
            cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="t2", secondary_ip_count=3)
        elif action == "AttachNetworkInterface":
            cloud.attach_eni(eni.eni_id, NODE1)
        elif action == "AssignPrivateIpAddresses":
            cloud.assign_ips(eni.eni_id, count=2)
        elif action == "UnassignPrivateIpAddresses":
            cloud.unassign_ips(eni.eni_id, list(eni.secondary_ips))
        elif action == "DetachNetworkInterface":
            cloud.detach_eni(eni.eni_id, NODE1)
        elif action == "DeleteNetworkInterface":
            cloud.delete_eni(eni.eni_id)
        else:
            cloud.migrate_ip(eni.eni_id, other.eni_id, eni.secondary_ips[0])
    assert "failed" in err.value.output
    assert err.value.action == action
    assert _resources(emu.state()) == _resources(before)


def _resources(state: dict[str, object]) -> dict[str, object]:
    """The state without task records, the ClientToken cache and allocation cursors."""
    out = {k: v for k, v in state.items() if k not in ("tasks", "idempotency")}
    out["subnets"] = [{k: v for k, v in s.items() if k != "cursor"}
                      for s in state["subnets"]]  # type: ignore[attr-defined]
    return out


def test_task_timeout(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu, task_timeout_s=0.2, task_poll_s=0.05)
    emu.set_faults(task_delay_ms=5000)
    with pytest.raises(TaskTimeoutError) as err:
        cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="slow")
    assert err.value.code == "TaskTimeout"


def test_running_task_blocks_other_writes(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="m")
    emu.set_faults(task_delay_ms=300)
    raw = cloud_for(emu, max_attempts=1, task_timeout_s=0.01, task_poll_s=0.02)
    with pytest.raises(TaskTimeoutError):
        raw.assign_ips(eni.eni_id, count=1)
    with pytest.raises(CloudError) as err:
        raw.assign_ips(eni.eni_id, count=1)
    assert err.value.code == "UnsupportedOperation.MutexOperationTaskRunning"
    assert err.value.retryable
    # the patient client retries through the mutex error
    assert len(cloud.assign_ips(eni.eni_id, count=1)) == 1


def test_pending_states_are_visible_while_running(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name="p")
    emu.set_faults(task_delay_ms=60_000)
    hasty = cloud_for(emu, task_timeout_s=0.01, task_poll_s=0.02)
    with pytest.raises(TaskTimeoutError):
        hasty.attach_eni(eni.eni_id, NODE1)
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert seen.state == "ATTACHING"
    emu.admin("POST", "/_admin/tasks/finish", {})
    [seen] = cloud.describe_enis(eni_ids=[eni.eni_id])
    assert seen.state == "AVAILABLE" and seen.instance_id == NODE1


def test_injected_latency(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    emu.set_faults(latency_ms=30, actions=["DescribeSubnets"])
    before = _metric(cloud, "tke_cloud_api_latency_seconds_sum", action="DescribeSubnets")
    cloud.describe_subnets(vpc_id=VPC)
    after = _metric(cloud, "tke_cloud_api_latency_seconds_sum", action="DescribeSubnets")
    assert after - before >= 0.03


def test_lost_replies_are_harmless(emu: EmulatorHandle) -> None:
    """The call is applied but its reply is lost (HTTP 503): ClientTokens make the
    retried create/attach/assign return the first result; delete/unassign that
    find their target gone count as done."""
    cloud = cloud_for(emu, max_attempts=20)
    emu.set_faults(lost_reply_ratio=0.5, actions=[
        "CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
        "UnassignPrivateIpAddresses", "DetachNetworkInterface", "DeleteNetworkInterface"])
    made = []
    for i in range(4):
        eni = cloud.create_eni(vpc_id=VPC, subnet_id=POD3, name=f"lost-{i}", secondary_ip_count=1)
        made.append(eni.eni_id)
        if i == 0:
            cloud.attach_eni(eni.eni_id, NODE1)
            ips = cloud.assign_ips(eni.eni_id, count=2)
            cloud.unassign_ips(eni.eni_id, ips)
            cloud.detach_eni(eni.eni_id, NODE1)
        cloud.delete_eni(eni.eni_id)
    emu.clear_faults()
    assert emu.leaked_enis() == []
    retried = emu.emulator.api.calls
    assert retried["CreateNetworkInterface"] > 4 or retried["DeleteNetworkInterface"] > 4
    assert cloud.describe_subnets([POD3])[0].available_ips == 4093
