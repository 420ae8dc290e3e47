"""The leak clean-up deletes only what is certainly ours and certainly leaked
(issue 11, item 9): an ENI tagged with our cluster id AND our creator, in our
VPC, detached (or attached to an instance that no longer exists), seen leaked
for at least ``--leaked-eni-min-age``; an event and a metric per deletion;
``--leaked-eni-dry-run`` only reports. Another cluster's ENIs — same cluster
tag (the deploy/ placeholder installed twice), attached to its own nodes, in
another VPC, or made by another creator — are never touched.

Real kube-apiserver, the cloud emulator through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import names
from core.ids import InstanceId, SubnetId, VpcId
from harness.ipamd_world import CLUSTER, POD_SUBNET3, VPC
from ipamd import metrics
from localcluster.controlplane import ControlPlane
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import Kube, wait_for
from tests.integration.ipamd_recording import ipamd_recording
from vpcsim.testing import EmulatorHandle

OTHER_VPC, OTHER_SUBNET = "vpc-sim00002", "subnet-sim00099"
NOT_OUR_NODE = "ins-sim00003"  # exists in the cloud, is no node of this cluster


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    yield k
    k.wipe()


def make_enis(emu: EmulatorHandle) -> dict[str, str]:
    """kind -> ENI id: one real leak of ours and four ENIs that are not ours to delete."""
    ours = cloud_for(emu, cluster_id=CLUSTER)
    other_creator = cloud_for(emu, cluster_id=CLUSTER, creator="someone-else")
    out: dict[str, str] = {}
    out["leak"] = ours.create_eni(
        vpc_id=VpcId(VPC), subnet_id=SubnetId(POD_SUBNET3), name="leak", secondary_ip_count=2
    ).eni_id
    # the other cluster installed with the same (placeholder) cluster id: its ENI is
    # attached to its own node, an instance that exists but is none of ours
    attached = ours.create_eni(
        vpc_id=VpcId(VPC),
        subnet_id=SubnetId(POD_SUBNET3),
        name="other-cluster",
        secondary_ip_count=2,
        instance_id=InstanceId(NOT_OUR_NODE),
    )
    ours.attach_eni(attached.eni_id, InstanceId(NOT_OUR_NODE))
    out["attached-elsewhere"] = attached.eni_id
    out["other-vpc"] = ours.create_eni(
        vpc_id=VpcId(OTHER_VPC), subnet_id=SubnetId(OTHER_SUBNET), name="other-vpc"
    ).eni_id
    out["other-creator"] = other_creator.create_eni(
        vpc_id=VpcId(VPC), subnet_id=SubnetId(POD_SUBNET3), name="other-creator"
    ).eni_id
    return out


def cloud_enis(emu: EmulatorHandle) -> dict[str, dict[str, Any]]:
    return {e["eni_id"]: e for e in emu.state()["enis"] if not e["primary"]}


def reconciled(seen: list[str], times: int) -> None:
    wait_for(f"{times} reconcile passes", lambda: seen.count("reconcile") >= times, 90)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_other_clusters_enis_are_never_deleted_and_a_young_leak_waits(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    made = make_enis(emu)
    # the default --leaked-eni-min-age (10m): far more than the passes below
    with ipamd_recording(emu, kube.kubeconfig) as (_, seen):
        wait_for("n1 warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        reconciled(seen, 2)
        now = cloud_enis(emu)
        for kind, eni_id in made.items():
            assert eni_id in now, f"{kind} ENI {eni_id} was deleted"
        assert now[made["attached-elsewhere"]]["instance_id"] == NOT_OUR_NODE


def test_old_leak_deleted_with_event_and_metric_others_kept(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    made = make_enis(emu)
    before = sample("tke_ipamd_leaked_enis_total", result="deleted")
    with ipamd_recording(emu, kube.kubeconfig, "--leaked-eni-min-age", "1s") as (_, seen):
        wait_for("the leak deleted", lambda: made["leak"] not in cloud_enis(emu), 90)
        reconciled(seen, seen.count("reconcile") + 2)
        now = cloud_enis(emu)
        for kind in ("attached-elsewhere", "other-vpc", "other-creator"):
            assert made[kind] in now, f"{kind} ENI {made[kind]} was deleted"
        assert now[made["attached-elsewhere"]]["instance_id"] == NOT_OUR_NODE
        evs = wait_for(
            "deletion event",
            lambda: [
                e
                for e in kube.events("kube-system", "LeakedENIDeleted")
                if made["leak"] in e["message"]
            ],
        )
        assert evs[0]["type"] == "Warning"
        assert names.TAG_CLUSTER_ID in evs[0]["message"] or CLUSTER in evs[0]["message"]
    assert sample("tke_ipamd_leaked_enis_total", result="deleted") == before + 1


def test_dry_run_reports_and_deletes_nothing(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    made = make_enis(emu)
    before = sample("tke_ipamd_leaked_enis_total", result="dry-run")
    with ipamd_recording(
        emu, kube.kubeconfig, "--leaked-eni-min-age", "1s", "--leaked-eni-dry-run"
    ) as (_, seen):
        wait_for(
            "dry-run event",
            lambda: [
                e
                for e in kube.events("kube-system", "LeakedENIWouldDelete")
                if made["leak"] in e["message"]
            ],
            90,
        )
        reconciled(seen, seen.count("reconcile") + 2)
        now = cloud_enis(emu)
        for kind, eni_id in made.items():
            assert eni_id in now, f"dry run deleted the {kind} ENI {eni_id}"
    assert sample("tke_ipamd_leaked_enis_total", result="dry-run") >= before + 1
