"""The declarative start state (YAML or JSON) and the built-in default.

Form::

    region: ap-guangzhou
    security_groups:                # ingress/egress: rules as the API writes them
      - {id: sg-sim00001, name: default, default: true,
         ingress: [{Protocol: ALL, CidrBlock: 0.0.0.0/0, Action: ACCEPT}]}
    vpcs:
      - id: vpc-sim00001          # optional; generated when absent
        cidr: 10.0.0.0/16
        require_security_group: false
        subnets:
          - {id: subnet-sim00003, name: node-3, cidr: 10.0.3.0/24, zone: ap-guangzhou-3}
        instances:
          - {id: ins-sim00001, type: S5.LARGE8, subnet: node-3, private_ip: 10.0.3.10}

An instance's ``subnet`` is a subnet name or id of its VPC. ``enis`` /
``ips_per_eni`` override the table quota (families the table lacks). A file
holding ``enis:`` at the top level is a full dump (``/_admin/state``) and is
loaded as is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from vpcsim import security_groups, tasks
from vpcsim.apierror import ApiError
from vpcsim.world import DEFAULT_REGION, World

DEFAULT_SPEC: dict[str, Any] = {
    "region": DEFAULT_REGION,
    "security_groups": [{"id": "sg-sim00001", "name": "default", "default": True}],
    "vpcs": [
        {
            "id": "vpc-sim00001",
            "name": "tke-sim",
            "cidr": "10.0.0.0/16",
            "subnets": [
                {
                    "id": "subnet-sim00003",
                    "name": "node-3",
                    "cidr": "10.0.3.0/24",
                    "zone": "ap-guangzhou-3",
                },
                {
                    "id": "subnet-sim00004",
                    "name": "node-4",
                    "cidr": "10.0.4.0/24",
                    "zone": "ap-guangzhou-4",
                },
                {
                    "id": "subnet-sim00033",
                    "name": "pod-3",
                    "cidr": "10.0.32.0/20",
                    "zone": "ap-guangzhou-3",
                },
                {
                    "id": "subnet-sim00044",
                    "name": "pod-4",
                    "cidr": "10.0.48.0/20",
                    "zone": "ap-guangzhou-4",
                },
            ],
            "instances": [
                {"id": "ins-sim00001", "type": "S5.LARGE8", "subnet": "node-3", "name": "node-1"},
                {"id": "ins-sim00002", "type": "SA2.MEDIUM4", "subnet": "node-4", "name": "node-2"},
            ],
        }
    ],
}


class SpecError(ValueError):
    """A start state that cannot be built."""


def build(spec: dict[str, Any]) -> World:
    """A World from a declarative spec (or a full dump)."""
    if not isinstance(spec, dict):
        raise SpecError("the state spec must be a mapping")
    if "enis" in spec:
        world = World.from_dict(spec)
        tasks.finish_all(world)
        return world
    world = World(str(spec.get("region", DEFAULT_REGION)))
    try:
        for g in spec.get("security_groups", []):
            sg = world.add_security_group(
                g.get("name", ""),
                g.get("id"),
                description=g.get("description", ""),
                default=bool(g.get("default", False)),
            )
            for direction in ("ingress", "egress"):
                rules = [
                    security_groups.policy_from(r, f"{sg.sg_id}.{direction}[{i}]")[0]
                    for i, r in enumerate(g.get(direction, []))
                ]
                getattr(sg, direction).extend(rules)
        for v in spec.get("vpcs", []):
            vpc = world.add_vpc(v["cidr"], v.get("name", ""), v.get("id"))
            vpc.require_security_group = bool(v.get("require_security_group", False))
            if "eni_quota" in v:
                vpc.eni_quota = int(v["eni_quota"])
            names: dict[str, str] = {}
            for s in v.get("subnets", []):
                sub = world.add_subnet(
                    vpc.vpc_id, s["cidr"], s["zone"], s.get("name", ""), s.get("id")
                )
                names[sub.name or sub.subnet_id] = sub.subnet_id
                names[sub.subnet_id] = sub.subnet_id
            for i in v.get("instances", []):
                ref = i["subnet"]
                if ref not in names:
                    raise SpecError(f"instance {i.get('id', '?')}: unknown subnet {ref!r}")
                world.add_instance(
                    names[ref],
                    i.get("type", "S5.LARGE8"),
                    instance_id=i.get("id"),
                    private_ip=i.get("private_ip"),
                    name=i.get("name", ""),
                    enis=i.get("enis"),
                    ips_per_eni=i.get("ips_per_eni"),
                    state=i.get("state", "RUNNING"),
                )
    except SpecError:
        raise
    except (KeyError, TypeError, ValueError, ApiError) as exc:
        raise SpecError(f"invalid state spec: {exc!r}") from exc
    return world


def load_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the state file must hold a mapping")
    return data
