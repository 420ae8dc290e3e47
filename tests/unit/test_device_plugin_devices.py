"""Pure parts of the device plugin: device ids, the capacity rule, the live
state and its change notification, the capacity file."""

from __future__ import annotations

import threading

import pytest

from core.capacityfile import CapacityFileError, CapacityOverrides, parse_capacity_file
from core.limits import EniLimits, limits_for_type
from device_plugin.capacity import CapacityInputs, device_set
from device_plugin.devices import DeviceSet, device_id, device_index
from device_plugin.state import CapacityState


@pytest.mark.parametrize(
    ("index", "text"),
    [(0, "eni-ip-000"), (7, "eni-ip-007"), (123, "eni-ip-123"), (1234, "eni-ip-1234")],
)
def test_device_ids_round_trip(index: int, text: str) -> None:
    assert device_id(index) == text
    assert device_index(text) == index


@pytest.mark.parametrize(
    "bad", ["", "eni-ip-", "eni-ip-1", "eni-ip-0007", "eni-ip--01", "ENI-IP-001", "eni-ip-00a", "x"]
)
def test_malformed_device_ids_have_no_index(bad: str) -> None:
    assert device_index(bad) is None


def test_device_ids_are_stable_and_short() -> None:
    first = DeviceSet(273, 273).devices()
    assert first == DeviceSet(273, 273).devices()
    assert all(len(i) <= 63 for i, _ in first)
    assert len({i for i, _ in first}) == 273


def test_device_set_health_split() -> None:
    ds = DeviceSet(5, 3)
    assert ds.devices() == [
        ("eni-ip-000", "Healthy"),
        ("eni-ip-001", "Healthy"),
        ("eni-ip-002", "Healthy"),
        ("eni-ip-003", "Unhealthy"),
        ("eni-ip-004", "Unhealthy"),
    ]
    assert ds.unhealthy == 2
    assert ds.contains("eni-ip-004") and not ds.contains("eni-ip-005")
    with pytest.raises(ValueError, match="invalid device set"):
        DeviceSet(2, 3)


# (instance type, expected capacity) from (ENIs − 1) × (IPs per ENI − 1) and the table
CAPACITY_CASES = [
    ("S5.LARGE8", 27),  # 4 ENIs × 10 IPs
    ("SA2.MEDIUM4", 27),  # 4 × 10
    ("SA2.2XLARGE16", 95),  # 6 × 20
    ("M5.4XLARGE64", None),  # whatever the table says, via the same rule
    ("SA2.SMALL1", 5),  # 2 × 6
]


@pytest.mark.parametrize(("itype", "expected"), CAPACITY_CASES)
def test_capacity_from_table(itype: str, expected: int | None) -> None:
    limits = limits_for_type(itype)
    want = expected if expected is not None else (limits.enis - 1) * (limits.ips_per_eni - 1)
    assert device_set(CapacityInputs(limits=limits)) == DeviceSet(want, want)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (CapacityInputs(), DeviceSet(0, 0)),  # limits unknown: nothing yet
        (CapacityInputs(EniLimits(4, 10)), DeviceSet(27, 27)),
        (CapacityInputs(EniLimits(4, 10), max_pods=10), DeviceSet(10, 10)),
        (CapacityInputs(EniLimits(4, 10), max_pods=100), DeviceSet(27, 27)),
        (CapacityInputs(EniLimits(4, 10), max_pods=0), DeviceSet(0, 0)),
        (CapacityInputs(EniLimits(4, 10), unavailable_enis=1), DeviceSet(27, 18)),
        (CapacityInputs(EniLimits(4, 10), unavailable_enis=3), DeviceSet(27, 0)),
        (CapacityInputs(EniLimits(4, 10), unavailable_enis=9), DeviceSet(27, 0)),
        (CapacityInputs(EniLimits(4, 10), usable_ips=5), DeviceSet(27, 5)),
        (CapacityInputs(EniLimits(4, 10), usable_ips=0), DeviceSet(27, 0)),
        (CapacityInputs(EniLimits(4, 10), usable_ips=500), DeviceSet(27, 27)),
        (CapacityInputs(EniLimits(4, 10), max_pods=8, usable_ips=5), DeviceSet(8, 5)),
        (CapacityInputs(EniLimits(4, 10), unavailable_enis=2, usable_ips=12), DeviceSet(27, 9)),
        (CapacityInputs(EniLimits(1, 10)), DeviceSet(0, 0)),  # primary ENI only
    ],
)
def test_capacity_rule(inputs: CapacityInputs, expected: DeviceSet) -> None:
    assert device_set(inputs) == expected


@pytest.mark.parametrize("kwargs", [{"max_pods": -1}, {"unavailable_enis": -1}, {"usable_ips": -3}])
def test_capacity_inputs_reject_negatives(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        CapacityInputs(**kwargs)  # type: ignore[arg-type]


def test_state_versions_only_on_device_change() -> None:
    state = CapacityState()
    seen: list[DeviceSet] = []
    state.add_listener(lambda s: seen.append(s.devices))
    v0 = state.snapshot().version
    state.set_limits(EniLimits(4, 10))
    v1 = state.snapshot().version
    assert v1 == v0 + 1
    state.set_usable_ips(400)  # above capacity: nothing changes
    assert state.snapshot().version == v1
    state.set_usable_ips(20)
    state.set_max_pods(10)
    state.set_max_pods(None)
    assert [d for d in seen] == [
        DeviceSet(0, 0),
        DeviceSet(27, 27),
        DeviceSet(27, 20),
        DeviceSet(10, 10),
        DeviceSet(27, 20),
    ]


def test_state_wakes_waiters_on_change() -> None:
    state = CapacityState()
    version = state.snapshot().version
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(state.wait_changed(version, 30).version))
    t.start()
    state.set_limits(EniLimits(2, 6))
    t.join(30)
    assert got == [version + 1]


def test_state_update_is_one_change() -> None:
    state = CapacityState(CapacityInputs(EniLimits(4, 10)))
    v = state.snapshot().version
    state.update(max_pods=9, unavailable_enis=1, usable_ips=3)
    snap = state.snapshot()
    assert snap.version == v + 1
    assert snap.devices == DeviceSet(9, 3)


def test_capacity_file_parse() -> None:
    text = "# operator\nmax_pods = 12\n\nunavailable_enis=1  # eni-x is broken\nusable_ips=7\n"
    assert parse_capacity_file(text) == CapacityOverrides(12, 1, 7)
    assert parse_capacity_file("") == CapacityOverrides()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("max_pods", "expected one of"),
        ("maxpods=3", "expected one of"),
        ("usable_ips=-1", "integer >= 0"),
        ("usable_ips=lots", "integer >= 0"),
        ("max_pods=3\nwhat=1", ":2:"),
    ],
)
def test_capacity_file_rejects(text: str, match: str) -> None:
    with pytest.raises(CapacityFileError, match=match):
        parse_capacity_file(text, "/etc/cap")
