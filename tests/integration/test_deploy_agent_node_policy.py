"""deploy/agent's ValidatingAdmissionPolicy on the real kube-apiserver: the agent's
token, bound to the agent pod on node A (TokenRequest with boundObjectRef, as the
kubelet's projected token is), may patch the status of node A's VpcIPs and is
refused for node B's with a message naming both nodes; a token bound to no pod is
refused; ipamd's token and the admin are not affected."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from localcluster.controlplane import ControlPlane
from tests.deploy_support import DEPLOY, apply, create_crds, kustomize_build, load_docs, yaml_files
from tests.ipamd_records import create_vpc_eni, create_vpc_ip

NS = "kube-system"
AGENT, IPAMD = "tke-eni-agent", "tke-eni-ipamd"
NODE_A, NODE_B = "policy-node-a", "policy-node-b"
IP_A, IP_B = "10.251.0.10", "10.251.0.20"
ENI_A, ENI_B = "eni-policy0a", "eni-policy0b"
SUBNET = "subnet-policy01"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
OBJ_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
             *POLICY_KINDS)


def _token_client(admin: client.ApiClient, sa: str, pod: client.V1Pod | None) -> client.ApiClient:
    spec = client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    if pod is not None:
        spec.bound_object_ref = client.V1BoundObjectReference(
            api_version="v1", kind="Pod", name=pod.metadata.name, uid=pod.metadata.uid
        )
    req = client.AuthenticationV1TokenRequest(spec=spec)
    token = client.CoreV1Api(admin).create_namespaced_service_account_token(sa, NS, req)
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.api_key = {"authorization": f"Bearer {token.status.token}"}
    return client.ApiClient(conf)


def _whoami(api: client.ApiClient) -> dict[str, Any]:
    review = client.AuthenticationV1Api(api).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    info = review.status.user_info
    return {"username": info.username, "extra": dict(info.extra or {})}


def _patch_status(api: client.ApiClient, ip: str, pod: str) -> Any:
    return client.CustomObjectsApi(api).patch_cluster_custom_object_status(
        CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip,
        {"status": {"phase": "InUse", "podNamespace": "default", "podName": pod}},
    )


def _refused(api: client.ApiClient, ip: str) -> str:
    with pytest.raises(client.ApiException) as err:
        _patch_status(api, ip, "intruder")
    assert err.value.status == 403, f"want 403, got {err.value.status} {err.value.body}"
    return str(err.value.body)


def _agent_pod(node: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"tke-eni-agent-{node}"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": AGENT,
            "automountServiceAccountToken": False,
            "hostNetwork": True,
            "containers": [{"name": "agent", "image": "tke-vpc-cni:latest"}],
        },
    }


@pytest.fixture
def policy_setup(control_plane: ControlPlane) -> Iterator[dict[str, Any]]:
    """CRDs, deploy/agent's and deploy/ipamd's RBAC and the policy (for real), two
    Nodes with one VpcIP each and an agent pod on each; all removed afterwards."""
    objs = [o for d in ("agent", "ipamd") for o in kustomize_build(DEPLOY / d)
            if o["kind"] in OBJ_KINDS]
    assert {o["kind"] for o in objs} >= set(POLICY_KINDS), [o["kind"] for o in objs]
    with contextlib.closing(control_plane.api_client()) as admin:
        create_crds(admin, [d for p in yaml_files(DEPLOY / "crds") for d in load_docs(p)])
        dyn = DynamicClient(admin)
        custom = client.CustomObjectsApi(admin)
        core = client.CoreV1Api(admin)
        pods: dict[str, client.V1Pod] = {}
        try:
            for obj in objs:
                apply(dyn, obj, dry_run=False)
            for node, ip, eni in ((NODE_A, IP_A, ENI_A), (NODE_B, IP_B, ENI_B)):
                core.create_node({"metadata": {"name": node}})
                create_vpc_eni(custom, eni, node, SUBNET)
                create_vpc_ip(custom, ip, node, eni, SUBNET)
                pods[node] = core.create_namespaced_pod(NS, _agent_pod(node))
            yield {"admin": admin, "pods": pods}
        finally:
            for node, pod in pods.items():
                with contextlib.suppress(client.ApiException):
                    core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
                with contextlib.suppress(client.ApiException):
                    core.delete_node(node)
            for plural, name in ((PLURAL_VPC_IP, IP_A), (PLURAL_VPC_IP, IP_B),
                                 (PLURAL_VPC_ENI, ENI_A), (PLURAL_VPC_ENI, ENI_B)):
                with contextlib.suppress(client.ApiException):
                    custom.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, plural, name)
            for obj in reversed(objs):
                res = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
                with contextlib.suppress(client.ApiException):
                    dyn.delete(res, name=obj["metadata"]["name"],
                               namespace=obj["metadata"].get("namespace"))


def _wait_policy_active(api: client.ApiClient, ip: str) -> str:
    """The policy takes effect once the API server has compiled it (bounded wait)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            _patch_status(api, ip, "probe")
        except client.ApiException as exc:
            if exc.status == 403:
                return str(exc.body)
            raise
        assert time.monotonic() < deadline, "the ValidatingAdmissionPolicy never took effect"
        time.sleep(0.5)


def test_agent_token_of_node_a_writes_only_node_a_vpcips(policy_setup: dict[str, Any]) -> None:
    admin = policy_setup["admin"]
    pod_a = policy_setup["pods"][NODE_A]
    with contextlib.closing(_token_client(admin, AGENT, pod_a)) as agent_a:
        who = _whoami(agent_a)
        print(f"agent token of a pod on {NODE_A}: {who}")
        assert who["username"] == f"system:serviceaccount:{NS}:{AGENT}"
        assert who["extra"]["authentication.kubernetes.io/node-name"] == [NODE_A]
        body = _wait_policy_active(agent_a, IP_B)
        print(f"refused: {body}")
        assert (
            f"tke-eni-agent on node {NODE_A} may only write the status of VpcIPs of its own "
            f"node; VpcIP {IP_B} is on node {NODE_B}"
        ) in body
        assert "ValidatingAdmissionPolicy 'tke-eni-agent-own-node-vpcips'" in body
        got = _patch_status(agent_a, IP_A, "web-0")
        assert got["status"]["podName"] == "web-0"

    custom = client.CustomObjectsApi(admin)
    got_b = custom.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, IP_B)
    assert (got_b.get("status") or {}).get("podName") != "intruder"

    # node B's own agent may
    with contextlib.closing(_token_client(admin, AGENT, policy_setup["pods"][NODE_B])) as agent_b:
        assert _patch_status(agent_b, IP_B, "db-0")["status"]["podName"] == "db-0"
        _refused(agent_b, IP_A)

    # a token of the agent's ServiceAccount bound to no pod: no node, no write
    with contextlib.closing(_token_client(admin, AGENT, None)) as unbound:
        body = _refused(unbound, IP_A)
        assert "this token is not bound to a pod on a node" in body, body

    # ipamd's token (it writes VpcIP spec, any node's) and the admin are not matched
    with contextlib.closing(_token_client(admin, IPAMD, None)) as ipamd:
        got = client.CustomObjectsApi(ipamd).patch_cluster_custom_object(
            CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, IP_B, {"spec": {"state": "Releasing"}}
        )
        assert got["spec"]["state"] == "Releasing"
    assert _patch_status(admin, IP_A, "by-admin")["status"]["podName"] == "by-admin"


def test_node_name_is_in_the_token_before_the_node_registers(
    policy_setup: dict[str, Any],
) -> None:
    """An agent starts before its kubelet has registered the Node: a token bound to
    a pod on a node without a Node object still carries the node name."""
    admin = policy_setup["admin"]
    core = client.CoreV1Api(admin)
    pod = core.create_namespaced_pod(NS, _agent_pod("policy-node-unregistered"))
    try:
        with contextlib.closing(_token_client(admin, AGENT, pod)) as agent:
            extra = _whoami(agent)["extra"]
            print(extra)
            assert extra["authentication.kubernetes.io/node-name"] == ["policy-node-unregistered"]
    finally:
        core.delete_namespaced_pod(pod.metadata.name, NS, grace_period_seconds=0)
