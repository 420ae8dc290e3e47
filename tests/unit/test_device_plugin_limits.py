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


class MetadataDown:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, path: str) -> str:
        self.asked.append(path)
        raise OSError(f"metadata service unreachable ({path})")


def test_instance_type_given_and_metadata_down_advertises_the_table() -> None:
    """--instance-type is enough for the table: the plugin advertises from it
    while the metadata service (the instance id the API needs) does not answer,
    and keeps asking for the id in the background."""
    import dataclasses

    seen: list[EniLimits] = []
    got = threading.Event()

    def on_limits(limits: EniLimits) -> None:
        seen.append(limits)
        got.set()

    def factory(identity: NodeIdentity, s: Settings) -> InstanceReader:
        raise AssertionError("no instance id: the API must not be called")

    metadata = MetadataDown()
    settings = dataclasses.replace(BASE, instance_id="", limits_source="api")
    resolver = LimitsResolver(settings, metadata, factory, on_limits)
    resolver.start()
    try:
        assert got.wait(10), (
            "no limits published while the metadata service is down, though "
            f"--instance-type {settings.instance_type} is set (metadata asked: {metadata.asked})"
        )
        assert seen == [EniLimits(6, 20, "table")]
        assert not resolver.done.is_set()  # the API's answer may still replace the table's
    finally:
        resolver.stop()


def test_instance_type_given_then_metadata_answers_the_api_replaces_the_table() -> None:
    import dataclasses

    seen: list[EniLimits] = []
    reader = FakeReader(0)

    class LateMetadata:
        calls = 0

        def get(self, path: str) -> str:
            if path != "instance-id":
                raise OSError("not served")
            LateMetadata.calls += 1
            if LateMetadata.calls < 3:
                raise OSError("metadata service unreachable")
            return "ins-late"

    def factory(identity: NodeIdentity, s: Settings) -> InstanceReader:
        assert identity.instance_id == "ins-late"
        return reader  # type: ignore[return-value]

    settings = dataclasses.replace(BASE, instance_id="", limits_source="api")
    resolver = LimitsResolver(settings, LateMetadata(), factory, seen.append)
    resolver.identity_retry = 0.01
    t = threading.Thread(target=resolver.run)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert seen == [EniLimits(6, 20, "table"), EniLimits(6, 40, "api")]
