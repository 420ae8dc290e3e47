"""Where the limits come from: API first, the table while it fails, the API's
answer replacing the table's; table-only mode makes no cloud call."""

from __future__ import annotations

import threading

from cloud.errors import CloudError
from cloud.ports import InstanceReader
from core.ids import InstanceId
from core.limits import EniLimits
from device_plugin.identity import NodeIdentity
from device_plugin.limits import LimitsResolver
from device_plugin.settings import Settings


class FakeReader:
    """Fails ``failures`` times, then answers 6 ENIs × 40 IPs."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def describe_instances(self, instance_ids: object) -> list[object]:
        return []

    def eni_limits(self, instance_id: InstanceId) -> EniLimits:
        self.calls += 1
        if self.calls <= self.failures:
            raise CloudError("DescribeNetworkInterfaceLimit", "ClientNetworkError", "refused")
        return EniLimits(6, 40, "api")


class NoMetadata:
    def get(self, path: str) -> str:
        raise AssertionError(f"metadata asked for {path}")


def run(settings: Settings, reader: FakeReader | None) -> tuple[list[EniLimits], LimitsResolver]:
    seen: list[EniLimits] = []

    def factory(identity: NodeIdentity, s: Settings) -> InstanceReader:
        assert reader is not None, "table mode must not build a cloud client"
        return reader  # type: ignore[return-value]

    resolver = LimitsResolver(settings, NoMetadata(), factory, seen.append)
    t = threading.Thread(target=resolver.run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    return seen, resolver


BASE = Settings(
    instance_id="ins-1",
    instance_type="SA2.2XLARGE16",
    zone="ap-guangzhou-3",
    region="ap-guangzhou",
    limits_retry_interval=0.01,
    limits_retry_max=0.02,
)


def test_api_answers_first_time() -> None:
    reader = FakeReader(0)
    seen, resolver = run(BASE, reader)
    assert seen == [EniLimits(6, 40, "api")]
    assert resolver.done.is_set()


def test_table_while_api_fails_then_api() -> None:
    reader = FakeReader(3)
    seen, _ = run(BASE, reader)
    assert seen == [EniLimits(6, 20, "table"), EniLimits(6, 40, "api")]
    assert reader.calls == 4


def test_table_only_mode() -> None:
    import dataclasses

    seen, _ = run(dataclasses.replace(BASE, limits_source="table"), None)
    assert seen == [EniLimits(6, 20, "table")]


def test_bad_type_and_api_down_gives_nothing_until_api() -> None:
    import dataclasses

    reader = FakeReader(2)
    seen, _ = run(dataclasses.replace(BASE, instance_type="not-a-type"), reader)
    assert seen == [EniLimits(6, 40, "api")]
