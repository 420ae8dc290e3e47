"""The emulated VPC of the local run, made of deploy/'s knob values (the guide's VPC and
subnet ids), with node subnets, a spare subnet for the live-append scenario, a subnet
that holds a CVM (refused by ipamd) and a zone whose only subnet is for nodes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

ZONE3, ZONE4, ZONE5 = "ap-guangzhou-3", "ap-guangzhou-4", "ap-guangzhou-5"
ZONE_IDS = {ZONE3: "100003", ZONE4: "100004", ZONE5: "100005"}
NODE_SUBNETS = {ZONE3: "subnet-node0003", ZONE4: "subnet-node0004", ZONE5: "subnet-node0005"}
SPARE_SUBNET = "subnet-spare003"  # zone 3, empty: appended live by the scenario
BUSY_SUBNET = "subnet-busy0003"  # zone 3, holds a CVM: ipamd must refuse it
#: every instance's group unless told otherwise (the project's default): allows all
DEFAULT_SECURITY_GROUP = "sg-node0001"


@dataclass(frozen=True)
class CloudLayout:
    vpc_id: str
    pod_subnets: tuple[str, str]  # zone 3, zone 4 (the ConfigMap's TKE_ENI_IPAMD_SUBNET_ID)

    def spec(self) -> dict[str, Any]:
        pod3, pod4 = self.pod_subnets
        return {
            "region": "ap-guangzhou",
            "security_groups": [
                {"id": DEFAULT_SECURITY_GROUP, "name": "default", "default": True,
                 "description": "the nodes' group: allows all",
                 "ingress": [{"Protocol": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}],
                 "egress": [{"Protocol": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}]},
            ],
            "vpcs": [{
                "id": self.vpc_id, "name": "tke-localrun", "cidr": "10.0.0.0/16",
                "subnets": [
                    {"id": NODE_SUBNETS[ZONE3], "name": "node-3", "cidr": "10.0.3.0/24",
                     "zone": ZONE3},
                    {"id": NODE_SUBNETS[ZONE4], "name": "node-4", "cidr": "10.0.4.0/24",
                     "zone": ZONE4},
                    {"id": NODE_SUBNETS[ZONE5], "name": "node-5", "cidr": "10.0.5.0/24",
                     "zone": ZONE5},
                    {"id": pod3, "name": "pod-3", "cidr": "10.0.32.0/20", "zone": ZONE3},
                    {"id": pod4, "name": "pod-4", "cidr": "10.0.48.0/20", "zone": ZONE4},
                    # larger than pod-3: once appended, new zone-3 ENIs come from it
                    # (ipamd picks the subnet with the most free IPs)
                    {"id": SPARE_SUBNET, "name": "pod-3-spare", "cidr": "10.0.64.0/18",
                     "zone": ZONE3},
                    {"id": BUSY_SUBNET, "name": "shared-3", "cidr": "10.0.160.0/24",
                     "zone": ZONE3},
                ],
                "instances": [
                    # a CVM in the shared subnet: it may not host pod ENIs (guide: "the
                    # subnet cannot be shared with other cloud resources")
                    {"id": "ins-busy0001", "type": "S5.LARGE8", "subnet": "shared-3",
                     "name": "legacy-vm"},
                ],
            }],
        }


def layout_from_configmap(data: dict[str, str]) -> CloudLayout:
    subnets = [s for s in data["TKE_ENI_IPAMD_SUBNET_ID"].split(":") if s]
    if len(subnets) != 2:
        raise ValueError("deploy/knobs/ipamd-configmap.yaml must list two subnets (zones 3 and "
                         f"4) for the local run, got {subnets}")
    return CloudLayout(data["TKE_ENI_IPAMD_VPC_ID"], (subnets[0], subnets[1]))


def gateway_of(cidr: str) -> str:
    """The VPC gateway of a subnet: its first address."""
    return str(ipaddress.ip_network(cidr).network_address + 1)
