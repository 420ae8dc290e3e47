"""Deterministic scenarios on the model-based test's world
(tests/unit/test_model_ipam.py ``IpamModel``): the real ipamd App, agents,
checkpoint and emulator, driven step by step by a test instead of by
Hypothesis. Used by the tests the mutation triage added (docs/mutation.md),
each of which pins one rule a surviving mutant broke unnoticed."""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from typing import Any

import pytest

import cni.agent.reconcile as agent_reconcile
from core import names
from tests import model_world
from tests.model_fakes import FakeKube
from tests.model_world import NODES, NS
from tests.unit.test_model_ipam import IpamModel


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[IpamModel]:
    """A settled cluster: a warm pool on each node, dynamic pod ``dyn-a`` on
    n1 and StatefulSet pod ``web-0`` (static IP, claim ``default/web-0``) on n2."""
    monkeypatch.setattr(agent_reconcile, "ensure_sysctl", lambda name, value: [])
    w = IpamModel()
    try:
        yield w
    finally:
        w.teardown()


def vpcip(w: IpamModel, ip: str) -> dict[str, Any] | None:
    return w.store.get("vpcips", "", ip)


def spec(w: IpamModel, ip: str) -> dict[str, Any]:
    obj = vpcip(w, ip)
    assert obj is not None, f"VpcIP {ip} is gone"
    return dict(obj.get("spec") or {})


def claim_obj(w: IpamModel, name: str) -> dict[str, Any] | None:
    return w.store.get("vpcipclaims", NS, name)


def cloud_holder(w: IpamModel, ip: str) -> str | None:
    """The instance whose ENI holds ``ip`` in the cloud ("" detached, None nowhere)."""
    for e in w._cloud_enis().values():
        if any(a.address == ip for a in e.ips):
            return e.instance_id or ""
    return None


def tick(w: IpamModel, n: int = 1) -> None:
    for _ in range(n):
        w._live_ipamd().tick()


def events(w: IpamModel, reason: str) -> list[dict[str, Any]]:
    ipamd = w._live_ipamd()
    return [e for e in ipamd.kube.events if e.get("reason") == reason]


def node_ips(w: IpamModel, node: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in w.store.items("vpcips")
        if (o.get("spec") or {}).get("nodeName") == node
    }


__all__ = ["NODES", "NS", "IpamModel", "wide_world", "world"]


POD2_SUBNET = "subnet-sim00034"  # a second pod subnet in the nodes' zone
ZONE4, ZONE4_SUBNET, ZONE4_INSTANCE = "ap-guangzhou-4", "subnet-sim00044", "ins-sim00004"


@pytest.fixture
def wide_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[IpamModel]:
    """``world`` in a VPC with a second pod subnet in the nodes' zone and an
    instance in a zone no pod subnet is configured for (not yet a node)."""
    spec_ = copy.deepcopy(model_world.SPEC)
    vpc = spec_["vpcs"][0]
    vpc["subnets"] += [
        {"id": POD2_SUBNET, "name": "pod2", "cidr": "10.0.32.64/26", "zone": model_world.ZONE},
        {"id": ZONE4_SUBNET, "name": "node4", "cidr": "10.0.4.0/24", "zone": ZONE4},
    ]
    vpc["instances"].append({"id": ZONE4_INSTANCE, "type": "S5.LARGE8", "subnet": "node4"})
    monkeypatch.setattr(model_world, "SPEC", spec_)
    monkeypatch.setattr(agent_reconcile, "ensure_sysctl", lambda name, value: [])
    w = IpamModel()
    try:
        yield w
    finally:
        w.teardown()


def add_node(w: IpamModel, name: str, zone: str, instance: str) -> None:
    """A Node object only (no agent runs there)."""
    w.store.put(
        "nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {names.ZONE_LABEL: zone, names.INSTANCE_TYPE_LABEL: "S5.LARGE8"},
            },
            "spec": {"providerID": f"qcloud:///{zone}/{instance}"},
        },
    )


def set_subnet(w: IpamModel, subnet: str) -> None:
    cm = w.store.get("configmaps", names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
    assert cm is not None
    cm["data"][names.CM_SUBNET_ID] = subnet
    w.store.put("configmaps", cm)


def cloud_enis_in(w: IpamModel, subnet: str, instance: str) -> list[str]:
    return sorted(
        e.eni_id
        for e in w._cloud_enis().values()
        if e.subnet_id == subnet and e.instance_id == instance and not e.primary
    )


def unguarded(w: IpamModel) -> None:
    """Switch off the model's trim guard (``TrimGuard``: a warm IP is asked back
    only as a trim) for a scenario that drains a subnet on purpose."""
    kube = w._live_ipamd().kube
    kube.patch = types.MethodType(FakeKube.patch, kube)  # type: ignore[method-assign]


def skips_first(w: IpamModel) -> None:
    """Make the live ipamd walk a node's records with the ones its rules skip
    first (claimed, not Assigned, marked as a pod's own), then by address. The
    index it walks is a set (its order follows string hashing), so a loop that
    stopped at the first skipped record instead of going on would otherwise be
    caught only when the hash order happened to put a skipped record first."""
    st = w._live_ipamd().app.state
    walk = st.node_ips

    def ordered(name: str) -> list[Any]:
        recs = walk(name)
        return sorted(
            recs,
            key=lambda r: (not r.claim, r.state == "Assigned", not r.unclaimed_uid, r.ip),
        )

    st.node_ips = ordered  # type: ignore[method-assign]
