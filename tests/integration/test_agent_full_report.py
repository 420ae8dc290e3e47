"""The agent's periodic usage pass is a real full report: when the API no
longer holds what the agent reported (ipamd re-created a VpcIP under a
running pod, a status write was lost, someone edited it), the next periodic
pass puts it back, without any change on the node to trigger it. And it
compares against what the API holds, so a node in sync writes nothing.
Real kube-apiserver, the agent's Kubernetes IP source and reporter."""

from __future__ import annotations

import contextlib
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client

from cni.agent.agent import Agent, AgentSettings
from cni.agent.pool import Allocation, PoolState
from cni.agent.reporter import Reporter
from cni.agent.sources.kube_ipsource import KubeNodeIpSource
from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from kit.kubelite import KubeLite
from tests.integration.test_agent_kube import api, lite, wait_view  # noqa: F401 - fixture
from tests.ipamd_records import create_vpc_eni, create_vpc_ip, mark_eni_attached


def until(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll; the bound only ends a hung test."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.1)


def test_periodic_pass_restores_what_the_api_lost(
    api: client.ApiClient,  # noqa: F811 - the fixture
    lite: KubeLite,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    crd = client.CustomObjectsApi(api)
    tag = uuid.uuid4().hex[:8]
    node, eni = f"fr-{tag}", f"eni-{tag}"
    net = f"10.{150 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    used, spare = f"{net}.10", f"{net}.11"

    def status(ip: str) -> dict[str, Any]:
        obj = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        return dict(obj.get("status") or {})

    def version(ip: str) -> str:
        obj = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        return str(obj["metadata"]["resourceVersion"])

    create_vpc_eni(crd, eni, node, "subnet-f")
    mark_eni_attached(
        crd,
        eni,
        mac="02:00:00:00:fe:01",
        primary_ip=f"{net}.2",
        subnet_cidr=f"{net}.0/24",
        gateway=f"{net}.1",
    )
    for ip in (used, spare):
        create_vpc_ip(crd, ip, node, eni, "subnet-f")
    src = KubeNodeIpSource(lite, node)
    src.start()
    state = PoolState()
    state.allocations[used] = Allocation(
        used, eni, "cid-1", "eth0", "/run/netns/x", "tke0000000000aa", "default", "web", "uid-1"
    )
    agent = Agent(
        AgentSettings(),
        source=src,
        pods=None,
        netops=types.SimpleNamespace(),  # type: ignore[arg-type]  # the reporter needs no netlink
        state=state,
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    reporter = Reporter(agent, interval=0.5)
    reporter.start()
    try:
        wait_view(src, lambda v: len(v.ips) == 2, "node's IPs listed")
        reporter.poke()
        until("usage reported", lambda: status(used).get("phase") == "InUse")
        until("spare reported", lambda: status(spare).get("phase") == "Free")
        # ipamd re-creates the VpcIP under the running pod: its status is gone
        crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, used)
        create_vpc_ip(crd, used, node, eni, "subnet-f")
        assert status(used).get("phase") != "InUse"
        # nothing changes on the node; the periodic pass puts it back
        until(
            "the re-created VpcIP reported InUse again",
            lambda: status(used).get("phase") == "InUse" and status(used).get("podName") == "web",
        )
        # someone overwrites a status by hand: put back too
        crd.patch_cluster_custom_object_status(
            CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, spare, {"status": {"phase": "InUse"}}
        )
        until("the edited status put back", lambda: status(spare).get("phase") == "Free")
        # in sync: the periodic passes compare and write nothing
        time.sleep(1.0)
        before = {ip: version(ip) for ip in (used, spare)}
        time.sleep(2.0)  # four periodic passes
        assert {ip: version(ip) for ip in (used, spare)} == before
    finally:
        reporter.stop()
        src.stop()
        for ip in (used, spare):
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni)
