"""The reconcile loop never acts on a claimed address from its record alone
(issue 11, items 2/4 class: a record trusted while a cloud write may have
happened after it). Real kube-apiserver, the cloud emulator through the real
SDK, ipamd in this process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.ids import EniId, SubnetId, VpcId
from harness.ipamd_world import CLUSTER, POD_SUBNET3, VPC
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import Kube, wait_for
from tests.integration.ipamd_recording import ipamd_recording
from vpcsim.testing import EmulatorHandle


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


def reconciled(seen: list[str], times: int) -> None:
    wait_for(f"{times} reconcile passes", lambda: seen.count("reconcile") >= times, 90)


def test_a_claimed_record_is_never_pointed_at_an_eni_of_no_node(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """The claimed address is found on an ENI of ours that no node holds (no
    VpcENI, detached): the reconcile re-pointed the record to it under the
    record's old node, so that node's agent would serve an address its instance
    does not hold."""
    kube.add_node("n1", "ins-sim00001")
    ours = cloud_for(emu, cluster_id=CLUSTER)
    with ipamd_recording(emu, kube.kubeconfig) as (_, seen):
        pod = kube.add_pod("web-0", "n1")
        uid = pod["metadata"]["uid"]

        def static() -> dict[str, object] | None:
            for o in kube.vpcips("n1"):
                if o["spec"].get("claim") == "default/web-0" and (
                    o["spec"].get("reservedPodUid") == uid
                ):
                    return o
            return None

        rec = wait_for("web-0's static IP on n1", static, 60)
        ip, src = rec["metadata"]["name"], rec["spec"]["eniId"]
        parked = ours.create_eni(vpc_id=VpcId(VPC), subnet_id=SubnetId(POD_SUBNET3), name="parked")
        ours.migrate_ip(EniId(src), parked.eni_id, ip)  # a cloud write ipamd did not make
        reconciled(seen, seen.count("reconcile") + 3)
        now = kube.api.get_or_none(paths.vpc_ip(ip))
        assert now is not None
        assert now["spec"]["eniId"] != parked.eni_id, (
            f"VpcIP {ip} names ENI {parked.eni_id} (attached to no node) under node "
            f"{now['spec']['nodeName']}"
        )
