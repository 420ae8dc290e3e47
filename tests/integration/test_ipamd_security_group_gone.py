"""ipamd's --enable-security-groups when an ENI goes between the node's describe
and the (dis)association that would change its groups, against the real
kube-apiserver and the cloud emulator through the real SDK: the cloud answers
"not found", ipamd counts it as
``tke_ipamd_security_group_changes_total{result="gone"}`` (not an error), emits
no SecurityGroupsFailed event, and the node's next ENI gets the node's groups.

The ENI is really detached and deleted in the emulator (through a second cloud
client) just before ipamd's association call reaches it."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from core.ids import EniId, InstanceId
from harness.ipamd_world import POD_SUBNET3, SPEC
from ipamd import metrics
from localcluster.controlplane import ControlPlane
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import Kube, ipamd_inprocess, wait_for
from tests.integration.ipamd_recording import ipamd_recording
from vpcsim.testing import EmulatorHandle, run_emulator

DEFAULT, WEB = "sg-node0001", "sg-web00001"
INSTANCE = "ins-sim00001"
TWO_WARM = ("--min-prebind", "2", "--max-prebind", "2")
CHANGES = "tke_ipamd_security_group_changes_total"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", INSTANCE)
    yield k
    k.wipe()


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    spec = copy.deepcopy(SPEC)
    spec["security_groups"] = [
        {"id": DEFAULT, "name": "default", "default": True},
        {"id": WEB, "name": "web"},
    ]
    with run_emulator(spec, faults={"rate_limits": False}) as handle:
        yield handle


def node_groups(emu: EmulatorHandle, groups: list[str]) -> None:
    """The instance's groups (its primary ENI's)."""
    w = emu.emulator.world
    with w.lock:
        w.enis[w.instances[INSTANCE].primary_eni_id].security_groups = list(groups)


def eni_groups(emu: EmulatorHandle) -> dict[str, list[str]]:
    """Secondary ENI id -> its groups, for the ENIs on the instance."""
    return {
        e["eni_id"]: list(e["security_groups"])
        for e in emu.state()["enis"]
        if e["instance_id"] == INSTANCE and not e["primary"]
    }


def metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def failures(kube: Kube) -> list[dict[str, Any]]:
    return kube.events("default", "SecurityGroupsFailed")


class DeleteBeforeAssociate:
    """ipamd's cloud; the first association call deletes its ENIs (detach, then
    delete, waiting for both tasks) before it is sent."""

    def __init__(self, inner: Any, emu: EmulatorHandle) -> None:
        self.inner = inner
        self.other = cloud_for(emu)
        self.deleted: list[str] = []
        self._once = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def associate_security_groups(self, eni_ids: Sequence[EniId], group_ids: Sequence[str]) -> None:
        if self._once.acquire(blocking=False):
            for eni_id in eni_ids:
                self.other.detach_eni(eni_id, InstanceId(INSTANCE))
                self.other.delete_eni(eni_id)
                self.deleted.append(eni_id)
        self.inner.associate_security_groups(eni_ids, group_ids)


def test_eni_gone_before_its_association_counts_gone_not_error(
    kube: Kube, emu: EmulatorHandle
) -> None:
    node_groups(emu, [WEB, DEFAULT])
    # an ENI without groups, made while the switch is off
    with ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        wait_for("an ENI on n1", lambda: eni_groups(emu))
    (first,) = eni_groups(emu)
    assert eni_groups(emu)[first] == []

    gone_before = metric(CHANGES, action="associate", result="gone")
    errors_before = metric(CHANGES, action="associate", result="error")
    wrapped: list[DeleteBeforeAssociate] = []

    def wrap(cloud: Any) -> DeleteBeforeAssociate:
        wrapped.append(DeleteBeforeAssociate(cloud, emu))
        return wrapped[0]

    with ipamd_recording(
        emu, kube.kubeconfig, "--enable-security-groups", *TWO_WARM, wrap=wrap
    ) as (_app, seen):
        wait_for(
            "the association answered 'gone'",
            lambda: metric(CHANGES, action="associate", result="gone") == gone_before + 1,
        )
        assert wrapped[0].deleted == [first]
        assert first not in eni_groups(emu)
        # the node's next ENI is made with the node's groups, in order
        wait_for(
            "a new ENI holding web, default",
            lambda: [g for e, g in eni_groups(emu).items() if e != first] == [[WEB, DEFAULT]],
        )
        assert any(k.startswith("sg:n1") for k in seen), seen
    assert metric(CHANGES, action="associate", result="error") == errors_before
    assert not failures(kube), failures(kube)
