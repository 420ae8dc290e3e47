"""The CVM metadata service, one per emulated instance.

Addressed per instance under ``/meta/<instance-id>/latest/meta-data/`` (the
real service is ``http://metadata.tencentyun.com/latest/meta-data/``). Plain
text, 404 for unknown paths. MACs are lower-case here (as on a CVM); the API
returns them upper-case."""

from __future__ import annotations

import json
import secrets
import time

from vpcsim import addressing
from vpcsim.api import Credential
from vpcsim.world import Eni, World

CREDENTIAL_TTL_S = 2 * 3600


class Metadata:
    def __init__(self, world: World, credentials: dict[str, Credential]) -> None:
        self.world = world
        self.credentials = credentials
        self._issued: dict[str, tuple[str, str, str, float]] = {}  # instance -> tmp creds

    def instance_at(self, address: str) -> str | None:
        """The instance whose private IP is ``address`` (who is calling), or None."""
        with self.world.lock:
            for inst in self.world.instances.values():
                if inst.private_ip == address:
                    return inst.instance_id
        return None

    def get(self, instance_id: str, path: str) -> str | None:
        """The text at ``path`` (relative to ``latest/meta-data/``) or None (404)."""
        with self.world.lock:
            inst = self.world.instances.get(instance_id)
            if inst is None:
                return None
            enis = [e for e in self.world.enis_of(instance_id) if e.state != "ATTACHING"]
            primary = next((e for e in enis if e.primary), None)
            by_mac = {e.mac.lower(): e for e in enis}
            flat: dict[str, str] = {
                "instance-id": inst.instance_id,
                "instance/instance-type": inst.instance_type,
                "instance-name": inst.name or inst.instance_id,
                "placement/region": self.world.region,
                "placement/zone": inst.zone,
                "local-ipv4": inst.private_ip,
                "mac": primary.mac.lower() if primary else "",
                "uuid": inst.instance_id,
                "cam/security-credentials": inst.role,
            }
            return self._lookup(inst.instance_id, inst.role, path.strip("/"), flat, by_mac)

    def _lookup(
        self, instance_id: str, role: str, p: str, flat: dict[str, str], by_mac: dict[str, Eni]
    ) -> str | None:
        flat[""] = "\n".join(
            ["instance-id", "instance/", "placement/", "local-ipv4", "mac", "network/", "cam/"]
        )
        flat["network/interfaces"] = "macs/"
        flat["network/interfaces/macs"] = "\n".join(f"{m}/" for m in by_mac)
        if p in flat:
            return flat[p]
        if p == f"cam/security-credentials/{role}":
            return self._role_credentials(instance_id)
        prefix = "network/interfaces/macs/"
        if not p.startswith(prefix):
            return None
        mac, _, rest = p[len(prefix) :].partition("/")
        eni = by_mac.get(mac.lower())
        return None if eni is None else self._eni_path(eni, rest)

    def _eni_path(self, eni: Eni, rest: str) -> str | None:
        subnet = self.world.subnets.get(eni.subnet_id)
        if subnet is None:
            return None
        primary_ip = next((ip.address for ip in eni.ips if ip.primary), "")
        simple = {
            "": "\n".join(
                [
                    "mac",
                    "primary-local-ipv4",
                    "vpc-id",
                    "subnet-id",
                    "local-ipv4s/",
                    "vpc-cidr-block",
                    "subnet-cidr-block",
                ]
            ),
            "mac": eni.mac.lower(),
            "primary-local-ipv4": primary_ip,
            "vpc-id": eni.vpc_id,
            "subnet-id": eni.subnet_id,
            "vpc-cidr-block": self.world.vpcs[eni.vpc_id].cidr,
            "subnet-cidr-block": subnet.cidr,
            "local-ipv4s": "\n".join(
                f"{ip.address}/" for ip in eni.ips if ip.state in ("AVAILABLE", "MIGRATING")
            ),
        }
        if rest in simple:
            return simple[rest]
        if rest.startswith("local-ipv4s/"):
            ip, _, leaf = rest[len("local-ipv4s/") :].partition("/")
            if eni.ip(ip) is None:
                return None
            leaves = {
                "": "gateway\nsubnet-mask\nlocal-ipv4",
                "gateway": addressing.gateway(subnet.cidr),
                "subnet-mask": addressing.netmask(subnet.cidr),
                "local-ipv4": ip,
            }
            return leaves.get(leaf)
        return None

    def _role_credentials(self, instance_id: str) -> str:
        now = time.time()
        issued = self._issued.get(instance_id)
        if issued is None or issued[3] - now < 600:
            sid = "AKIDtmp" + secrets.token_hex(12)
            key = secrets.token_hex(16)
            token = secrets.token_hex(24)
            expires = now + CREDENTIAL_TTL_S
            issued = (sid, key, token, expires)
            self._issued[instance_id] = issued
            self.credentials[sid] = Credential(key, token, expires)
        sid, key, token, expires = issued
        return json.dumps(
            {
                "TmpSecretId": sid,
                "TmpSecretKey": key,
                "Token": token,
                "ExpiredTime": int(expires),
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
                "Code": "Success",
            }
        )
