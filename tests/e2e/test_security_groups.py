"""Security groups on the local run (issue 16 item 1): ipamd runs with
--enable-security-groups (the overlay), so the ENIs follow their node's groups,
and the VPC fabric enforces the groups' ingress rules (localrun.sgfabric).

node-a's instance gets a group whose first rule drops TCP 80 from the zone-4 pod
subnet: within a reconcile period node-a's ENIs hold it, and an nginx pod on
node-a no longer answers HTTP from a pod on node-c (zone 4) while ping from
there still works, and HTTP from node-b (zone 3, the other subnet) still works.
Deleting the rule lifts the block. Every wait is bounded; no timing is asserted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cvm.v20170312 import cvm_client
from tencentcloud.cvm.v20170312 import models as cvm_models
from tencentcloud.vpc.v20170312 import models as vpc_models
from tencentcloud.vpc.v20170312 import vpc_client

from localrun.cloudspec import DEFAULT_SECURITY_GROUP
from localrun.environment import Environment
from localrun.pods import exec_in, ping, plain_pod, running_pod
from tests.fixtures_env import delete_and_wait, pod_ip, zone_subnets

pytestmark = pytest.mark.e2e
T = TypeVar("T")
LAST: dict[str, str] = {}  # node -> the last HTTP try's outcome (for failure messages)


def _wait(what: str, fn: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what} (last HTTP tries: {LAST})")
        time.sleep(0.5)


def _req(model: Any, **fields: Any) -> Any:
    req = model()
    req.from_json_string(json.dumps(fields))
    return req


@pytest.fixture
def clients(guide_env: Environment) -> Iterator[tuple[vpc_client.VpcClient, cvm_client.CvmClient]]:
    emu = guide_env.emulator
    assert emu is not None
    cred = credential.Credential(emu.secret_id, emu.secret_key)
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=emu.endpoint))
    yield (
        vpc_client.VpcClient(cred, emu.region, profile),
        cvm_client.CvmClient(cred, emu.region, profile),
    )


def _eni_groups(env: Environment, instance_id: str) -> list[list[str]]:
    assert env.emulator is not None
    return [
        list(e["security_groups"])
        for e in env.emulator.state()["enis"]
        if e["instance_id"] == instance_id and not e["primary"]
    ]


def _http(env: Environment, client: dict[str, Any], node: str, address: str) -> bool:
    """An HTTP GET from ``client`` (busybox's wget has no timeout option of its own: a
    dropped SYN is cut by ``timeout`` after 5 s)."""
    code, page = exec_in(env.real[node].node, client,
                         ["timeout", "5", "wget", "-q", "-O", "-", f"http://{address}/"],
                         timeout=15)
    LAST[node] = f"exit {code}: {page[:300]}"
    return code == 0 and "Welcome to nginx!" in page


def test_a_group_denying_tcp_80_from_another_subnet_blocks_http_not_ping(
    guide_env: Environment, clients: tuple[vpc_client.VpcClient, cvm_client.CvmClient]
) -> None:
    env, kube = guide_env, guide_env.kube
    vpc, cvm = clients
    node_a = env.real["node-a"].instance_id
    zone4 = list(zone_subnets(env, "ap-guangzhou-4").values())
    assert len(zone4) == 1, zone4
    pods = {"server-a": ("node-a", "nginx"), "client-c": ("node-c", "busybox"),
            "client-b": ("node-b", "busybox")}
    for name, (node, image) in pods.items():
        kube.request("/api/v1/namespaces/default/pods", "POST",
                     plain_pod(name, node_name=node, eni=True, image=image))
    try:
        server, client_c, client_b = (running_pod(kube, n) for n in pods)
        target = pod_ip(server)
        # the nodes' default group allows all; ipamd put it on node-a's ENIs
        _wait("node-a's ENIs hold the default group",
              lambda: all(g == [DEFAULT_SECURITY_GROUP] for g in _eni_groups(env, node_a)))
        _wait("HTTP from node-c before", lambda: _http(env, client_c, "node-c", target))

        sg = vpc.CreateSecurityGroup(_req(
            vpc_models.CreateSecurityGroupRequest, GroupName="no-http-from-zone4",
            GroupDescription="e2e")).SecurityGroup.SecurityGroupId
        deny = {"Protocol": "TCP", "Port": "80", "CidrBlock": zone4[0], "Action": "DROP"}
        allow = {"Protocol": "ALL", "Port": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}
        vpc.CreateSecurityGroupPolicies(_req(
            vpc_models.CreateSecurityGroupPoliciesRequest, SecurityGroupId=sg,
            SecurityGroupPolicySet={"Ingress": [deny, allow]}))
        cvm.ModifyInstancesAttribute(_req(
            cvm_models.ModifyInstancesAttributeRequest, InstanceIds=[node_a],
            SecurityGroups=[sg, DEFAULT_SECURITY_GROUP]))
        try:
            _wait("node-a's ENIs follow the instance's groups",
                  lambda: all(g == [sg, DEFAULT_SECURITY_GROUP]
                              for g in _eni_groups(env, node_a)))
            _wait("HTTP from node-c blocked",
                  lambda: not _http(env, client_c, "node-c", target), 30)
            ok, out = ping(env.real["node-c"].node, client_c, target)
            assert ok, f"ping from node-c must still pass:\n{out}"
            assert not _http(env, client_c, "node-c", target)
            assert _http(env, client_b, "node-b", target), "HTTP from zone 3 must still pass"

            vpc.DeleteSecurityGroupPolicies(_req(
                vpc_models.DeleteSecurityGroupPoliciesRequest, SecurityGroupId=sg,
                SecurityGroupPolicySet={"Ingress": [deny]}))
            _wait("HTTP from node-c again", lambda: _http(env, client_c, "node-c", target), 30)
        finally:
            cvm.ModifyInstancesAttribute(_req(
                cvm_models.ModifyInstancesAttributeRequest, InstanceIds=[node_a],
                SecurityGroups=[DEFAULT_SECURITY_GROUP]))
            _wait("node-a's ENIs back on the default group",
                  lambda: all(g == [DEFAULT_SECURITY_GROUP] for g in _eni_groups(env, node_a)))
    finally:
        for name in pods:
            delete_and_wait(env, f"/api/v1/namespaces/default/pods/{name}")
