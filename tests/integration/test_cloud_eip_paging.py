"""The cloud adapter's EIP reads and releases past one page, through the real SDK
against the emulator: ``describe_eips`` by tag walks DescribeAddresses with
Offset/Limit until TotalCount (230 tagged EIPs: 3 pages, each once, none twice,
the other tag's left out), by id in chunks of 100 AddressIds, and
``release_eips`` of more than 100 ids in chunks, each waiting for its task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud.eips import MAX_IDS, PAGE
from tests.emulator_client import cloud_for
from vpcsim.eip_model import Eip
from vpcsim.testing import EmulatorHandle, run_emulator

OURS = {"tke-eip-pod": "default/many"}
TAGGED, OTHERS = 230, 7


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(faults={"rate_limits": False}) as handle:
        w = handle.emulator.world
        with w.lock:
            w.eips.quota = TAGGED + OTHERS
            for i in range(TAGGED + OTHERS):
                e = Eip(f"eip-pg{i:06d}", f"198.18.{i // 250}.{i % 250 + 1}", status="UNBIND")
                e.tags = dict(OURS) if i < TAGGED else {"tke-eip-pod": "default/other"}
                w.eips.addresses[e.address_id] = e
        yield handle


def calls(emu: EmulatorHandle, action: str) -> int:
    return emu.emulator.api.calls.get(action, 0)


def test_describe_by_tag_walks_every_page(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    before = calls(emu, "DescribeAddresses")
    got = cloud.describe_eips(tags=OURS)
    assert [e.eip_id for e in got] == [f"eip-pg{i:06d}" for i in range(TAGGED)]
    assert calls(emu, "DescribeAddresses") - before == -(-TAGGED // PAGE)  # 3 pages
    assert len(cloud.describe_eips()) == TAGGED + OTHERS


def test_describe_and_release_by_id_in_chunks(emu: EmulatorHandle) -> None:
    cloud = cloud_for(emu)
    ids = [f"eip-pg{i:06d}" for i in range(0, TAGGED + OTHERS, 2)]  # 119: two chunks
    assert len(ids) > MAX_IDS
    before = calls(emu, "DescribeAddresses")
    assert sorted(e.eip_id for e in cloud.describe_eips(eip_ids=ids)) == ids
    assert calls(emu, "DescribeAddresses") - before == 2
    before = calls(emu, "ReleaseAddresses")
    cloud.release_eips(ids)
    assert calls(emu, "ReleaseAddresses") - before == 2
    assert cloud.describe_eips(eip_ids=ids) == []
    left = {e.eip_id for e in cloud.describe_eips()}
    assert left == {f"eip-pg{i:06d}" for i in range(1, TAGGED + OTHERS, 2)}
    assert cloud.eip_quota().used == len(left)
