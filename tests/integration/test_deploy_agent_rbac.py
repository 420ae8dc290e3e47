"""deploy/agent's RBAC and admission policy with the agent ServiceAccount's own token
(bound to an agent pod on NODE, as the kubelet's projected token is) on the real
kube-apiserver: the agent's real Kubernetes ports (``cni.agent.sources.kube_ipsource``,
``cni.agent.sources.kube_pods``, ``cni.agent.sources.kube_subnets``) work with it, and what the
agent must not do (per the ownership in core/models.py) is refused with 403.
test_deploy_agent_node_policy.py checks the policy across two nodes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from cni.agent.ipsource import IpUsage
from cni.agent.sources.kube_ipsource import KubeNodeIpSource
from cni.agent.sources.kube_pods import KubePodSource
from cni.agent.sources.kube_subnets import KubeSubnetStatusWatch
from core.ids import IPv4
from core.models import (
    SUBNET_STATUS_CONFIGMAP,
    SUBNET_STATUS_KEY,
    SubnetStatus,
    dump_subnet_statuses,
)
from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from kit.kubelite import Credentials, KubeLite
from localcluster.controlplane import ControlPlane
from tests.deploy_support import DEPLOY, apply, create_crds, kustomize_build, load_docs, yaml_files
from tests.ipamd_records import create_vpc_eni, create_vpc_ip

NS = "kube-system"
SA = "tke-eni-agent"
NODE = "rbac-node-1"
IP = "10.250.0.9"
ENI = "eni-rbac0001"
POD_NS, POD = "default", "rbac-probe"
OTHER_CM = "rbac-other-configmap"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
AGENT_POD = f"tke-eni-agent-{NODE}"
STATUS = [SubnetStatus(subnet_id="subnet-rbac0001", zone="ap-guangzhou-3", available=7)]


@pytest.fixture
def admin(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api:
        yield api


def _agent_client(admin: client.ApiClient) -> client.ApiClient:
    """An ApiClient that authenticates as the agent's ServiceAccount (TokenRequest bound
    to the agent pod on NODE)."""
    pod = client.CoreV1Api(admin).read_namespaced_pod(AGENT_POD, NS)
    bound = client.V1BoundObjectReference(
        api_version="v1", kind="Pod", name=AGENT_POD, uid=pod.metadata.uid
    )
    req = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], bound_object_ref=bound)
    )
    token = client.CoreV1Api(admin).create_namespaced_service_account_token(SA, NS, req)
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token.status.token}"}
    return client.ApiClient(conf)


def _agent_lite(admin: client.ApiClient, api: client.ApiClient) -> KubeLite:
    """The agent's own client (kit.kubelite) with ``api``'s ServiceAccount token."""
    token = api.configuration.api_key["authorization"].removeprefix("Bearer ")
    return KubeLite(
        admin.configuration.host,
        ca_file=admin.configuration.ssl_ca_cert,
        credentials=Credentials(token=token),
    )


def _forbidden(what: str, call: Callable[[], Any]) -> None:
    with pytest.raises(client.ApiException) as err:
        call()
    assert err.value.status == 403, f"{what}: want 403, got {err.value.status} {err.value.body}"


@pytest.fixture
def agent_rbac(admin: client.ApiClient) -> Iterator[list[dict[str, Any]]]:
    """CRDs, the agent's ServiceAccount/ClusterRole/Binding (for real), one VpcENI +
    VpcIP of NODE and a pod; all removed afterwards (the CRDs stay: shared)."""
    objs = kustomize_build(DEPLOY / "agent")
    rbac = [o for o in objs if o["kind"] in RBAC_KINDS]
    assert len(rbac) == 5, [o["kind"] for o in objs]
    policy = [o for o in objs if o["kind"] in POLICY_KINDS]
    assert len(policy) == 2, [o["kind"] for o in objs]
    rbac += policy
    create_crds(admin, [d for p in yaml_files(DEPLOY / "crds") for d in load_docs(p)])
    dyn = DynamicClient(admin)
    custom = client.CustomObjectsApi(admin)
    core = client.CoreV1Api(admin)
    created_status = False
    try:
        try:  # ipamd's subnet status (another test's ipamd may have published one)
            core.create_namespaced_config_map(
                NS,
                {
                    "metadata": {"name": SUBNET_STATUS_CONFIGMAP},
                    "data": {SUBNET_STATUS_KEY: dump_subnet_statuses(STATUS)},
                },
            )
            created_status = True
        except client.ApiException as exc:
            if exc.status != 409:
                raise
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": OTHER_CM}, "data": {"secret-ish": "no"}}
        )
        for obj in rbac:
            apply(dyn, obj, dry_run=False)
        core.create_namespaced_pod(NS, {  # the agent's pod on NODE (its token is bound to it)
            "metadata": {"name": AGENT_POD},
            "spec": {"nodeName": NODE, "serviceAccountName": SA,
                     "automountServiceAccountToken": False,
                     "containers": [{"name": "agent", "image": "tke-vpc-cni:latest"}]},
        })
        create_vpc_eni(custom, ENI, NODE, "subnet-rbac0001")
        create_vpc_ip(custom, IP, NODE, ENI, "subnet-rbac0001")
        core.create_namespaced_pod(
            POD_NS,
            {
                "metadata": {
                    "name": POD,
                    "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"},
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
        yield rbac
    finally:
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_pod(POD, POD_NS, grace_period_seconds=0)
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_pod(AGENT_POD, NS, grace_period_seconds=0)
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_config_map(OTHER_CM, NS)
        if created_status:
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_config_map(SUBNET_STATUS_CONFIGMAP, NS)
        for plural, name in ((PLURAL_VPC_IP, IP), (PLURAL_VPC_ENI, ENI)):
            with contextlib.suppress(client.ApiException):
                custom.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, plural, name)
        for obj in reversed(rbac):
            res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            with contextlib.suppress(client.ApiException):
                dyn.delete(
                    res, name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace")
                )


def test_agent_ports_work_with_the_agent_rbac(
    admin: client.ApiClient, agent_rbac: list[dict[str, Any]]
) -> None:
    with contextlib.closing(_agent_client(admin)) as api:
        lite = _agent_lite(admin, api)
        source = KubeNodeIpSource(lite, NODE)
        source.start()
        try:
            view = source.view()
            for _ in range(100):  # list + watch of both CRDs as the agent (bounded wait)
                if any(ip.ip == IP for ip in view.ips):
                    break
                view = source.wait_for_change(view.generation, timeout=0.5)
            assert any(ip.ip == IP for ip in view.ips), f"the agent could not list/watch: {view}"
            source.report([IpUsage(IPv4(IP), "InUse", POD_NS, POD, "uid-1", "cid-1")])
        finally:
            source.stop()
        got = client.CustomObjectsApi(admin).get_cluster_custom_object(
            CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, IP
        )
        assert got["status"]["phase"] == "InUse" and got["status"]["podName"] == POD

        info = KubePodSource(lite).get(POD_NS, POD)
        assert info is not None and info.uid

        # ipamd's subnet status: get, and list + watch by metadata.name (resourceNames)
        core_api = client.CoreV1Api(api)
        assert core_api.read_namespaced_config_map(SUBNET_STATUS_CONFIGMAP, NS).data
        changed = threading.Event()
        status = KubeSubnetStatusWatch(lite, NS, SUBNET_STATUS_CONFIGMAP, on_change=changed.set)
        status.start()
        try:
            assert status.current() is not None, "the agent could not list the subnet status"
            changed.clear()
            client.CoreV1Api(admin).patch_namespaced_config_map(
                SUBNET_STATUS_CONFIGMAP,
                NS,
                {"data": {SUBNET_STATUS_KEY: dump_subnet_statuses([*STATUS, *STATUS])}},
            )
            assert changed.wait(30), "the agent's watch saw no change"
            assert len(status.current() or []) == 2
        finally:
            status.stop()

        core = client.CoreV1Api(api)
        core.create_namespaced_event(
            POD_NS,
            {
                "metadata": {"generateName": "tke-eni-agent-"},
                "involvedObject": {"kind": "Pod", "namespace": POD_NS, "name": POD},
                "reason": "RbacProbe",
                "message": "agent may record events",
                "type": "Normal",
            },
        )


def test_agent_rbac_refuses_what_the_agent_does_not_own(
    admin: client.ApiClient, agent_rbac: list[dict[str, Any]]
) -> None:
    with contextlib.closing(_agent_client(admin)) as api:
        custom = client.CustomObjectsApi(api)
        core = client.CoreV1Api(api)
        g, v = CRD_GROUP, CRD_VERSION
        _forbidden(
            "patch VpcIP.spec (ipamd's)",
            lambda: custom.patch_cluster_custom_object(
                g, v, PLURAL_VPC_IP, IP, {"spec": {"state": "Releasing"}}
            ),
        )
        _forbidden(
            "delete VpcIP", lambda: custom.delete_cluster_custom_object(g, v, PLURAL_VPC_IP, IP)
        )
        _forbidden(
            "create VpcIP",
            lambda: custom.create_cluster_custom_object(
                g,
                v,
                PLURAL_VPC_IP,
                {
                    "apiVersion": f"{g}/{v}",
                    "kind": "VpcIP",
                    "metadata": {"name": "10.250.0.10"},
                    "spec": {"nodeName": NODE, "eniId": ENI, "subnetId": "subnet-x"},
                },
            ),
        )
        _forbidden(
            "patch VpcENI",
            lambda: custom.patch_cluster_custom_object(
                g, v, PLURAL_VPC_ENI, ENI, {"metadata": {"labels": {"x": "y"}}}
            ),
        )
        _forbidden(
            "patch VpcENI status",
            lambda: custom.patch_cluster_custom_object_status(
                g, v, PLURAL_VPC_ENI, ENI, {"status": {"phase": "Attached"}}
            ),
        )
        _forbidden(
            "list VpcIPClaims", lambda: custom.list_cluster_custom_object(g, v, "vpcipclaims")
        )
        _forbidden("list pods", lambda: core.list_namespaced_pod(POD_NS))
        _forbidden("delete pod", lambda: core.delete_namespaced_pod(POD, POD_NS))
        # its own Node may be read (spec.podCIDR for a mixed cluster's default network:
        # allowed, so a missing Node is a 404, not a 403); the nodes are not listed/watched
        with pytest.raises(client.ApiException) as err:
            core.read_node("no-such-node")
        assert err.value.status == 404, f"get node: want 404 (allowed), got {err.value.status}"
        _forbidden("list nodes", core.list_node)
        _forbidden("watch nodes", lambda: core.list_node(watch=True, timeout_seconds=1))
        _forbidden("list secrets", lambda: core.list_namespaced_secret(NS))
        _forbidden("list all ConfigMaps", lambda: core.list_namespaced_config_map(NS))
        _forbidden("get another ConfigMap", lambda: core.read_namespaced_config_map(OTHER_CM, NS))
        _forbidden(
            "list another ConfigMap by name",
            lambda: core.list_namespaced_config_map(NS, field_selector=f"metadata.name={OTHER_CM}"),
        )
        _forbidden(
            "watch all ConfigMaps",
            lambda: core.list_namespaced_config_map(NS, watch=True, timeout_seconds=1),
        )
        _forbidden(
            "the status name in another namespace",
            lambda: core.read_namespaced_config_map(SUBNET_STATUS_CONFIGMAP, POD_NS),
        )
        _forbidden(
            "update the subnet status (ipamd's)",
            lambda: core.patch_namespaced_config_map(
                SUBNET_STATUS_CONFIGMAP, NS, {"data": {SUBNET_STATUS_KEY: "[]"}}
            ),
        )
