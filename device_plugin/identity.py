"""Who this node is: instance id, type, zone and region, from the metadata
service with flag/env overrides (an override skips that metadata path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.ids import InstanceId, Zone
from device_plugin.settings import Settings


class MetadataReader(Protocol):
    def get(self, path: str) -> str: ...


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    instance_id: InstanceId
    instance_type: str
    zone: Zone
    region: str


def resolve_identity(settings: Settings, metadata: MetadataReader) -> NodeIdentity:
    """Overrides first, then metadata paths. Raises the metadata error of the
    first path it needed and could not read."""

    def pick(override: str, path: str) -> str:
        return override.strip() if override.strip() else metadata.get(path)

    # zone and region are informative for the plugin; the instance type is
    # needed only for the table, the id only for the API.
    need_id = settings.limits_source == "api" or not settings.instance_type
    instance_id = pick(settings.instance_id, "instance-id") if need_id else settings.instance_id
    instance_type = pick(settings.instance_type, "instance/instance-type")
    zone = _optional(settings.zone, metadata, "placement/zone")
    region = _optional(settings.region, metadata, "placement/region")
    if not region and zone:
        region = zone.rsplit("-", 1)[0]  # ap-guangzhou-3 → ap-guangzhou
    return NodeIdentity(InstanceId(instance_id), instance_type, Zone(zone), region)


def _optional(override: str, metadata: MetadataReader, path: str) -> str:
    if override.strip():
        return override.strip()
    try:
        return metadata.get(path)
    except Exception:  # noqa: BLE001 - optional field: absent is fine
        return ""
