"""Pods already bound to a node that have no ENI IP yet take that node's headroom
(issue 15): the extender watches them, against the real kube-apiserver and the real
kube-scheduler.

The node ``q-0`` is a plain Node object that kwok does not manage (no ``type=kwok``
label), so a pod bound there stays Pending with no IP, as a pod does on a real node
between its binding and the agent's ADD. Its eni-ip allocatable is 3 and two of its
VpcIPs are in use: one IP is usable now. A pod bound there (``waiting``) will take it;
kube-scheduler's own count still sees 2 of 3 free, so only the extender can refuse the
next pod."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, RESOURCE_ENI_IP, ZONE_LABEL
from harness.extender import ZONE_A, ZONE_B, pod_manifest, zone_nodes
from localcluster import objects as ex
from localcluster.fakenodes import KWOK_LABEL, FakeNode
from tests.fixtures_controlplane import ControlPlaneFactory
from tests.integration.test_extender_scheduler import (
    Cluster,
    configure,
    create_with_status,
    failed_scheduling,
    wait_bound,
)

NODE = "q-0"


@pytest.fixture
def cluster(control_plane_factory: ControlPlaneFactory, tmp_path: Path) -> Iterator[Cluster]:
    # a zone-B kwok node (zone B has no subnet: never a candidate) keeps kwok busy
    c = Cluster(control_plane_factory, zone_nodes(ZONE_B, "b", 1), tmp_path)
    try:
        labels = {ZONE_LABEL: ZONE_A}
        node = FakeNode(NODE, allocatable={RESOURCE_ENI_IP: "3"}, labels=labels).manifest()
        del node["metadata"]["labels"][KWOK_LABEL]  # no kwok: its pods stay Pending
        status = node.pop("status")
        c.core.create_node(node)
        c.core.patch_node_status(NODE, {"status": status})
        yield c
    except BaseException:
        print(c.extender.logs())
        raise
    finally:
        c.close()


def in_use(ip: str, pod_uid: str) -> dict[str, Any]:
    obj = ex.vpc_ip(ip, NODE, subnet="subnet-a", zone=ZONE_A, phase="InUse")
    obj["status"]["podUid"] = pod_uid
    return obj


def until(what: str, check: Callable[[], bool], c: Cluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s\n{c.extender.logs()}"
        time.sleep(0.2)


def passes(c: Cluster, name: str) -> bool:
    body = c.extender.post("/filter", ex.filter_args(ex.pod(name), [NODE]))
    return list(body.get("NodeNames") or []) == [NODE]


def test_a_pod_bound_without_an_ip_takes_the_nodes_headroom(cluster: Cluster) -> None:
    c = cluster
    configure(c, "subnet-a")
    for i, ip in enumerate(("10.0.3.5", "10.0.3.6")):
        create_with_status(c.api, PLURAL_VPC_IP, in_use(ip, f"uid-other-{i}"))
    c.extender.wait_ready()
    until("the extender sees one usable IP on q-0", lambda: passes(c, "probe-0"), c)

    waiting = pod_manifest("waiting")
    waiting["spec"]["nodeName"] = NODE  # bound, as the scheduler binds; no IP yet
    uid = c.core.create_namespaced_pod("default", waiting).metadata.uid
    c.core.create_namespaced_pod("default", pod_manifest("next"))
    message = failed_scheduling(c.core, "next", "tke-eni-ip-scheduler")
    print(f"FailedScheduling: {message}")
    assert "1 node(s) rejected by tke-eni-ip-scheduler: no ENI IP headroom" in message, message
    assert "bound there waiting for its IP" in message, message
    assert not c.core.read_namespaced_pod("next", "default").spec.node_name

    # the agent gives ``waiting`` its IP: counted once (in use), not twice
    create_with_status(c.api, PLURAL_VPC_IP, in_use("10.0.3.7", uid))
    client.CustomObjectsApi(c.api).delete_cluster_custom_object(
        CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, "10.0.3.5")
    until("one IP usable again once 10.0.3.5 is gone", lambda: passes(c, "probe-1"), c)

    # ``waiting`` gone: kube-scheduler retries ``next`` (a pod deletion is an event it
    # reacts to) and the extender lets it onto q-0
    c.core.delete_namespaced_pod("waiting", "default", grace_period_seconds=0)
    assert wait_bound(c.core, ["next"], timeout=60)["next"] == NODE
    # ``next`` is bound with no IP: it takes the one usable IP in turn
    until("the bound pod next counted", lambda: not passes(c, "probe-2"), c)
