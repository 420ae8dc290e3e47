"""Client of the CVM metadata service (``http://metadata.tencentyun.com/latest/meta-data/``,
or the emulator's ``http://127.0.0.1:PORT/meta/<instance-id>/latest/meta-data/``).
Plain-text GETs; a 404 is ``MetadataError`` naming the path."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

from cloud.settings import DEFAULT_METADATA_URL
from core.ids import InstanceId, SubnetId, VpcId, Zone


class MetadataError(Exception):
    """The metadata service failed or does not know the path."""


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    mac: str  # lower-case
    primary_ip: str
    vpc_id: VpcId
    subnet_id: SubnetId
    ips: tuple[str, ...]
    gateway: str
    netmask: str


class MetadataClient:
    def __init__(self, base_url: str = DEFAULT_METADATA_URL, timeout_s: float = 2.0) -> None:
        self.base = base_url.rstrip("/") + "/"
        self.timeout_s = timeout_s

    def get(self, path: str) -> str:
        url = self.base + path.lstrip("/")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:  # noqa: S310
                return str(resp.read().decode()).strip()
        except urllib.error.HTTPError as exc:
            raise MetadataError(f"metadata {url}: HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise MetadataError(f"metadata {url}: {exc}") from exc

    def _lines(self, path: str) -> list[str]:
        return [line.strip().rstrip("/") for line in self.get(path).splitlines() if line.strip()]

    def instance_id(self) -> InstanceId:
        return InstanceId(self.get("instance-id"))

    def instance_type(self) -> str:
        return self.get("instance/instance-type")

    def region(self) -> str:
        return self.get("placement/region")

    def zone(self) -> Zone:
        return Zone(self.get("placement/zone"))

    def primary_mac(self) -> str:
        return self.get("mac").lower()

    def macs(self) -> list[str]:
        """MACs of the attached interfaces (lower-case), primary included."""
        return [m.lower() for m in self._lines("network/interfaces/macs/")]

    def interface(self, mac: str) -> InterfaceInfo:
        base = f"network/interfaces/macs/{mac.lower()}/"
        primary = self.get(base + "primary-local-ipv4")
        return InterfaceInfo(
            mac=mac.lower(),
            primary_ip=primary,
            vpc_id=VpcId(self.get(base + "vpc-id")),
            subnet_id=SubnetId(self.get(base + "subnet-id")),
            ips=tuple(self._lines(base + "local-ipv4s/")),
            gateway=self.get(base + f"local-ipv4s/{primary}/gateway"),
            netmask=self.get(base + f"local-ipv4s/{primary}/subnet-mask"),
        )
