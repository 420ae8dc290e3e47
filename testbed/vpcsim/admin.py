"""Admin endpoints (JSON): ``GET /_admin/state``, ``GET|POST /_admin/faults``,
``POST /_admin/instances``, ``DELETE /_admin/instances/<id>``,
``POST /_admin/subnets``, ``POST /_admin/tasks/finish``. Errors are 400 with
``{"error": ...}``; never a crash."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from vpcsim import tasks
from vpcsim.apierror import ApiError

if TYPE_CHECKING:
    from vpcsim.server import Emulator

Reply = tuple[int, bytes]


def _json(status: int, data: Any) -> Reply:
    return status, json.dumps(data, sort_keys=True).encode()


class Admin:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    def get(self, path: str) -> Reply:
        if path == "/_admin/state":
            return _json(200, self.emu.dump())
        if path == "/_admin/faults":
            return _json(200, self.emu.faults.to_dict())
        if path == "/_admin/calls":
            return _json(200, dict(self.emu.api.calls))
        return _json(404, {"error": f"no admin endpoint GET {path}"})

    def post(self, path: str, body: bytes) -> Reply:
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            return _json(400, {"error": f"invalid JSON: {exc}"})
        if not isinstance(data, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        try:
            return self._post(path, data)
        except (ApiError, ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": f"{type(exc).__name__}: {exc}"})

    def _post(self, path: str, data: dict[str, Any]) -> Reply:
        w = self.emu.world
        if path == "/_admin/faults":
            self.emu.faults.update(data)
            return _json(200, self.emu.faults.to_dict())
        if path == "/_admin/instances":
            with w.lock:
                inst = w.add_instance(
                    str(data["subnet_id"]),
                    str(data.get("instance_type", "S5.LARGE8")),
                    instance_id=data.get("instance_id"),
                    private_ip=data.get("private_ip"),
                    name=str(data.get("name", "")),
                    enis=data.get("enis"),
                    ips_per_eni=data.get("ips_per_eni"),
                )
            self.emu.save()
            return _json(200, asdict(inst))
        if path == "/_admin/subnets":
            with w.lock:
                sub = w.add_subnet(
                    str(data["vpc_id"]),
                    str(data["cidr"]),
                    str(data["zone"]),
                    str(data.get("name", "")),
                    data.get("subnet_id"),
                )
            self.emu.save()
            return _json(200, asdict(sub))
        if path == "/_admin/tasks/finish":
            with w.lock:
                tasks.finish_all(w)
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no admin endpoint POST {path}"})

    def delete(self, path: str) -> Reply:
        prefix = "/_admin/instances/"
        if not path.startswith(prefix):
            return _json(404, {"error": f"no admin endpoint DELETE {path}"})
        instance_id = path[len(prefix) :]
        w = self.emu.world
        with w.lock:
            inst = w.instances.get(instance_id)
            if inst is None:
                return _json(404, {"error": f"no instance {instance_id}"})
            tasks.finish_all(w)
            for eni in w.enis_of(instance_id):
                if eni.primary:
                    w.release(eni.subnet_id, [ip.address for ip in eni.ips])
                    del w.enis[eni.eni_id]
                else:  # terminating an instance detaches its secondary ENIs
                    eni.instance_id = eni.device_index = eni.attach_time = None
            del w.instances[instance_id]
        self.emu.save()
        return _json(200, {"deleted": instance_id})
