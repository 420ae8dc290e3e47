"""The tke.cloud.tencent.com/eip device plugin's pure parts (device_plugin.eip),
called directly: device ids ``eip-000`` … and their parsing, the count holder
``EipDevices``, and the servicer's Allocate (the ids it advertises answered in
TKE_EIP_DEVICE_IDS, anything else refused with INVALID_ARGUMENT) and
GetPreferredAllocation (the required ids first, then the lowest indexes); also
``--eip-socket-name`` from its TKE_ENI_DP_* variable."""

from __future__ import annotations

import grpc
import pytest

from core.eip import RESOURCE_EIP
from device_plugin.eip import ENV_DEVICE_IDS, EipDevices, EipServicer, eip_device_id, eip_index
from device_plugin.settings import load
from protos.v1beta1 import api_pb2


class AbortedError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class Context:
    """The part of ``grpc.ServicerContext`` Allocate uses."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortedError(code, details)


def allocate(servicer: EipServicer, *requests: list[str]) -> api_pb2.AllocateResponse:
    req = api_pb2.AllocateRequest(
        container_requests=[api_pb2.ContainerAllocateRequest(devices_ids=ids) for ids in requests]
    )
    return servicer.Allocate(req, Context())  # type: ignore[arg-type]


def test_device_ids_round_trip_and_odd_ones_are_not_ours() -> None:
    assert [eip_device_id(i) for i in (0, 7, 123, 1000)] == [
        "eip-000",
        "eip-007",
        "eip-123",
        "eip-1000",
    ]
    for i in (0, 7, 123, 1000):
        assert eip_index(eip_device_id(i)) == i
    for odd in ("eip-1", "eip-0001", "eip-", "eni-ip-000", "eip-00a", " eip-000", "EIP-000"):
        assert eip_index(odd) is None, odd


def test_devices_count_and_version() -> None:
    d = EipDevices()
    assert (d.count, d.version) == (0, 1)
    d.set(3)
    assert (d.count, d.version) == (3, 2)
    d.set(3)  # no change: no new version
    assert d.version == 2
    assert d.wait_changed(1, 0) == (2, 3)  # already newer: answered at once
    assert d.wait_changed(2, 0) == (2, 3)  # unchanged: answered after the (zero) wait
    with pytest.raises(ValueError, match=">= 0"):
        d.set(-1)
    assert d.count == 3


def test_allocate_answers_advertised_ids_only() -> None:
    servicer = EipServicer(EipDevices(3))
    resp = allocate(servicer, ["eip-000", "eip-002"], ["eip-001"])
    assert [dict(c.envs) for c in resp.container_responses] == [
        {ENV_DEVICE_IDS: "eip-000,eip-002"},
        {ENV_DEVICE_IDS: "eip-001"},
    ]
    for bad in (["eip-003"], ["eip-000", "eip-1"], ["eni-ip-000"], []):
        with pytest.raises(AbortedError) as refused:
            allocate(servicer, ["eip-000"], bad)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert RESOURCE_EIP in refused.value.details
        assert "container request 1" in refused.value.details
        assert "advertises 3" in refused.value.details


def test_allocate_follows_the_count() -> None:
    devices = EipDevices(2)
    servicer = EipServicer(devices)
    assert allocate(servicer, ["eip-001"]).container_responses[0].envs[ENV_DEVICE_IDS] == "eip-001"
    devices.set(1)  # the quota or the node's eni-ip devices went down
    with pytest.raises(AbortedError):
        allocate(servicer, ["eip-001"])


def test_preferred_allocation_required_first_then_lowest() -> None:
    servicer = EipServicer(EipDevices(20))
    req = api_pb2.PreferredAllocationRequest(
        container_requests=[
            api_pb2.ContainerPreferredAllocationRequest(
                available_deviceIDs=["eip-010", "eip-002", "eip-007", "eip-001"],
                must_include_deviceIDs=["eip-007"],
                allocation_size=3,
            ),
            api_pb2.ContainerPreferredAllocationRequest(
                available_deviceIDs=["eip-005", "eip-004"], allocation_size=1
            ),
        ]
    )
    resp = servicer.GetPreferredAllocation(req, Context())  # type: ignore[arg-type]
    assert [list(c.deviceIDs) for c in resp.container_responses] == [
        ["eip-007", "eip-001", "eip-002"],
        ["eip-004"],
    ]


def test_eip_socket_name_from_env() -> None:
    s = load([], {"TKE_ENI_DP_EIP": "true", "TKE_ENI_DP_EIP_SOCKET_NAME": "eip-x.sock"})
    assert (s.eip, s.eip_socket_name) == (True, "eip-x.sock")
