"""The test bed's Kubernetes objects (localcluster.objects) spell the product's wire the
way the product does: the test bed may not import the product's core (import-linter),
so it writes every name itself, and this test is where the two meet."""

from __future__ import annotations

from core import models, names
from core.claimpolicy import is_static
from core.models import SubnetStatus, VpcIpSpec, load_subnet_statuses
from core.podnetwork import takes_eni_ip
from localcluster import objects as ex

SAME_NAMES = (
    "RESOURCE_ENI_IP",
    "ANNOTATION_NETWORKS",
    "NETWORK_ROUTE_ENI",
    "ANNOTATION_CLAIM_DELETE_POLICY",
    "CLAIM_POLICY_NEVER",
    "CONFIGMAP_NAMESPACE",
    "CONFIGMAP_NAME",
    "CM_SUBNET_ID",
    "CM_VPC_ID",
    "CRD_API_VERSION",
    "KIND_VPC_IP",
    "KIND_VPC_ENI",
    "KIND_VPC_IP_CLAIM",
    "NODE_LABEL",
    "ZONE_LABEL",
    "LEGACY_ZONE_LABEL",
)
SAME_MODELS = (
    "SUBNET_STATUS_CONFIGMAP",
    "SUBNET_STATUS_KEY",
    "IP_STATE_ASSIGNED",
    "IP_PHASE_FREE",
    "ENI_PHASE_ATTACHED",
    "SUBNET_ACTIVE",
)


def test_names_are_the_cores() -> None:
    differ = {n: (getattr(ex, n), getattr(names, n)) for n in SAME_NAMES
              if getattr(ex, n) != getattr(names, n)}
    differ |= {n: (getattr(ex, n), getattr(models, n)) for n in SAME_MODELS
               if getattr(ex, n) != getattr(models, n)}
    assert not differ, f"test bed vs core (name: (test bed, core)): {differ}"


def test_status_configmap_reads_back_with_the_cores_loader() -> None:
    cm = ex.status_configmap(
        ex.subnet("subnet-a", "ap-guangzhou-3", 7, 10),
        ex.subnet("subnet-b", "ap-guangzhou-4", state="Invalid", reason="not in VPC"),
    )
    loaded = load_subnet_statuses(cm["data"][models.SUBNET_STATUS_KEY])
    assert loaded == [
        SubnetStatus(subnet_id="subnet-a", vpc_id="vpc-test", zone="ap-guangzhou-3",
                     cidr="10.0.0.0/24", available=7, total=10),
        SubnetStatus(subnet_id="subnet-b", vpc_id="vpc-test", zone="ap-guangzhou-4",
                     cidr="10.0.0.0/24", available=100, total=253, state="Invalid",
                     reason="not in VPC"),
    ]
    assert cm["data"][models.SUBNET_STATUS_KEY] == models.dump_subnet_statuses(loaded)


def test_vpc_ip_and_static_pod_read_as_the_core_reads_them() -> None:
    spec = VpcIpSpec.from_dict(ex.vpc_ip("10.0.0.5", "node-a", claim="default/web-0")["spec"])
    assert (spec.node_name, spec.eni_id, spec.claim) == ("node-a", "eni-1", "default/web-0")
    meta = ex.pod("web-0", static=True)["metadata"]
    assert is_static(meta["annotations"], meta["ownerReferences"]), meta
    assert takes_eni_ip(meta["annotations"], host_network=False, eni_only_cluster=False), meta
