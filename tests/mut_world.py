"""Deterministic scenarios on the model-based test's world
(tests/unit/test_model_ipam.py ``IpamModel``): the real ipamd App, agents,
checkpoint and emulator, driven step by step by a test instead of by
Hypothesis. Used by the tests the mutation triage added (docs/mutation.md),
each of which pins one rule a surviving mutant broke unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import cni.agent.reconcile as agent_reconcile
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


__all__ = ["NODES", "NS", "IpamModel", "world"]
