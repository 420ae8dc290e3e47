"""Every name a user types or reads: resource, annotations, ConfigMap keys,
CRDs, labels and the tags we put on cloud resources. One place, so a typo is
a NameError instead of a silent mismatch between components."""

from __future__ import annotations

from typing import Final

# --- extended resources (device plugin, scheduler) ---
RESOURCE_ENI_IP: Final = "tke.cloud.tencent.com/eni-ip"
RESOURCE_DIRECT_ENI: Final = "tke.cloud.tencent.com/direct-eni"

# --- pod annotations ---
ANNOTATION_NETWORKS: Final = "tke.cloud.tencent.com/networks"
NETWORK_ROUTE_ENI: Final = "tke-route-eni"
ANNOTATION_CLAIM_DELETE_POLICY: Final = "tke.cloud.tencent.com/vpc-ip-claim-delete-policy"
CLAIM_POLICY_IMMEDIATE: Final = "Immediate"
CLAIM_POLICY_NEVER: Final = "Never"
CLAIM_POLICIES: Final = (CLAIM_POLICY_IMMEDIATE, CLAIM_POLICY_NEVER)
ANNOTATION_CLAIM_EXPIRED_DURATION: Final = "tke.cloud.tencent.com/claim-expired-duration"

# --- the subnet ConfigMap (ipamd) ---
CONFIGMAP_NAMESPACE: Final = "kube-system"
CONFIGMAP_NAME: Final = "tke-eni-ipamd"
CM_SUBNET_ID: Final = "TKE_ENI_IPAMD_SUBNET_ID"  # colon-separated subnet ids
CM_VPC_ID: Final = "TKE_ENI_IPAMD_VPC_ID"
CM_ZONE_DEPRECATED: Final = "TKE_ENI_IPAMD_ZONE"  # ignored, with a deprecation warning
CM_SUBNET_SEPARATOR: Final = ":"

# --- CRDs ---
CRD_GROUP: Final = "networking.tke.cloud.tencent.com"
CRD_VERSION: Final = "v1"
CRD_API_VERSION: Final = f"{CRD_GROUP}/{CRD_VERSION}"

KIND_VPC_IP_CLAIM: Final = "VpcIPClaim"
PLURAL_VPC_IP_CLAIM: Final = "vpcipclaims"
SHORT_VPC_IP_CLAIM: Final = "vipc"

KIND_VPC_IP: Final = "VpcIP"
PLURAL_VPC_IP: Final = "vpcips"
SHORT_VPC_IP: Final = "vip"

KIND_VPC_ENI: Final = "VpcENI"
PLURAL_VPC_ENI: Final = "vpcenis"
SHORT_VPC_ENI: Final = "veni"

FINALIZER_RELEASE_IP: Final = f"{CRD_GROUP}/release-ip"

# --- node labels ---
ZONE_LABEL: Final = "topology.kubernetes.io/zone"
LEGACY_ZONE_LABEL: Final = "failure-domain.beta.kubernetes.io/zone"
ZONE_LABELS: Final = (ZONE_LABEL, LEGACY_ZONE_LABEL)  # in order of preference
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
LEGACY_INSTANCE_TYPE_LABEL: Final = "beta.kubernetes.io/instance-type"
NODE_CONDITION_ENI_READY: Final = "TKEENIReady"
# label ipamd puts on every VpcENI / VpcIP, so a node's agent can watch its own
NODE_LABEL: Final = "tke.cloud.tencent.com/node"

# --- component names (Deployments, DaemonSets, event sources) ---
COMPONENT_IPAMD: Final = "tke-eni-ipamd"
COMPONENT_AGENT: Final = "tke-eni-agent"
COMPONENT_EXTENDER: Final = "tke-eni-ip-scheduler"
CNI_PLUGIN_TYPE: Final = "tke-route-eni"

# --- tags on cloud resources we create (so leaks can be found later) ---
TAG_CLUSTER_ID: Final = "tke-eni-cluster-id"
TAG_INSTANCE_ID: Final = "tke-eni-instance-id"
TAG_CREATOR: Final = "tke-eni-creator"
TAG_CREATOR_VALUE: Final = COMPONENT_IPAMD


def zone_of(labels: dict[str, str] | None) -> str | None:
    """The node's zone from its labels: the topology label, else the legacy one."""
    if not labels:
        return None
    for key in ZONE_LABELS:
        value = labels.get(key)
        if value:
            return value
    return None

