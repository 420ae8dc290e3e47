"""ipamd against the real kube-apiserver and the cloud emulator: node join,
subnet ConfigMap add/remove/invalid/missing, node removal. The tests play the
node agent's side of the contract (``AgentStandIn``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import models as m
from core import names
from harness.ipamd_world import POD_SUBNET3, POD_SUBNET4, VPC, ZONE3, ZONE4
from localcluster.controlplane import ControlPlane
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    yield k
    k.wipe()


def attached(emu: EmulatorHandle, instance: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in emu.state()["enis"] if not e["primary"] and e["instance_id"] == instance]


def test_node_join_gets_enis_and_warm_ips_in_its_zone(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(f"{POD_SUBNET3}:{POD_SUBNET4}")
    kube.add_node("n1", "ins-sim00001")
    kube.add_node("n2", "ins-sim00002")
    with ipamd_inprocess(emu, kube.kubeconfig):
        for node, subnet, ins in (
            ("n1", POD_SUBNET3, "ins-sim00001"),
            ("n2", POD_SUBNET4, "ins-sim00002"),
        ):
            ips = wait_for(
                f"5 warm IPs on {node}", lambda n=node: len(kube.vpcips(n)) == 5 and kube.vpcips(n)
            )
            assert {o["spec"]["subnetId"] for o in ips} == {subnet}
            enis = kube.vpcenis(node)
            assert len(enis) == 1
            st = enis[0]["status"]
            wait_for(
                "ENI attached",
                lambda n=node: kube.vpcenis(n)[0]["status"]["phase"] == m.ENI_PHASE_ATTACHED,
            )
            st = kube.vpcenis(node)[0]["status"]
            assert st["mac"] == st["mac"].lower() and st["primaryIp"] and st["gateway"]
            assert st["subnetCidr"] and st["deviceIndex"] >= 1
            assert enis[0]["metadata"]["labels"][names.NODE_LABEL] == node
            cloud = attached(emu, ins)
            assert [e["eni_id"] for e in cloud] == [enis[0]["metadata"]["name"]]
            assert cloud[0]["tags"][names.TAG_CLUSTER_ID] == "cls-test0001"
            assert {o["metadata"]["name"] for o in ips} <= set(cloud_ips(emu))
            cond = wait_for("node condition", lambda n=node: kube.node_condition(n))
            assert cond["status"] == "True"
        statuses = wait_for("subnet status", kube.subnet_status)
        assert {s.subnet_id: s.zone for s in statuses} == {POD_SUBNET3: ZONE3, POD_SUBNET4: ZONE4}


def test_warm_pool_follows_pods_and_trims_surplus(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("5 warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        pods = [kube.add_pod(f"d{i}", "n1", policy=None) for i in range(3)]
        used = [wait_for("a free IP", lambda p=p: agent.take_free("n1", p)) for p in pods]
        wait_for("pool refilled to used + 5", lambda: len(kube.vpcips("n1")) == 8)
        for ip in used:
            agent.free(ip)
        # surplus of 3 released one by one (trim interval 1s in tests), back to 5
        wait_for("surplus trimmed", lambda: len(kube.vpcips("n1")) == 5, timeout=60)
        wait_for("cloud follows", lambda: len(cloud_ips(emu)) == 5)
        assert agent.granted >= 3


def test_zone_without_subnet_gets_event_and_condition(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n2", "ins-sim00002")  # zone 4
    with ipamd_inprocess(emu, kube.kubeconfig):
        cond = wait_for("condition", lambda: kube.node_condition("n2"))
        assert cond["status"] == "False" and cond["reason"] == "NoSubnetInZone"
        assert ZONE4 in cond["message"]
        ev = wait_for("event", lambda: kube.events("default", "NoSubnetInZone"))
        assert ev[0]["involvedObject"]["name"] == "n2"
        assert kube.vpcenis("n2") == [] and attached(emu, "ins-sim00002") == []
        # adding the zone's subnet fixes it live, without a restart
        kube.set_subnets(f"{POD_SUBNET3}:{POD_SUBNET4}")
        wait_for("ENIs after the subnet is added", lambda: len(kube.vpcips("n2")) == 5)
        wait_for(
            "condition true", lambda: (kube.node_condition("n2") or {}).get("status") == "True"
        )


@pytest.mark.parametrize(
    ("value", "vpc", "needle"),
    [
        ("subnet-nothere1", VPC, "does not exist"),
        ("subnet-sim00099", VPC, "belongs to vpc-sim00002"),
        ("subnet-sim00003", VPC, "not empty"),  # the node subnet holds CVMs
        ("subnet_bad", VPC, "is not a subnet id"),
        (POD_SUBNET4, "vpc-BAD", "is not a VPC id"),
    ],
)
def test_invalid_subnet_change_refused_whole(
    kube: Kube, emu: EmulatorHandle, value: str, vpc: str, needle: str
) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    with ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        kube.set_subnets(f"{POD_SUBNET3}:{value}", vpc=vpc)
        evs = wait_for(
            "refusal event",
            lambda: [e for e in kube.events("kube-system") if needle in e.get("message", "")],
        )
        assert evs[0]["type"] == "Warning"
        assert evs[0]["involvedObject"]["name"] == names.CONFIGMAP_NAME
        # nothing half-applied: the previous set stays, ENIs keep working
        assert [s.subnet_id for s in kube.subnet_status() if s.state == m.SUBNET_ACTIVE] == [
            POD_SUBNET3
        ]
        assert len(kube.vpcips("n1")) == 5


def test_removed_subnet_drains_instead_of_breaking_pods(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(f"{POD_SUBNET3}:subnet-sim00035")
    kube.add_node("n1", "ins-sim00001")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        ips = wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5 and kube.vpcips("n1"))
        first = ips[0]["spec"]["subnetId"]  # the subnet with the most free IPs
        assert first == POD_SUBNET3
        pod = kube.add_pod("busy", "n1", policy=None)
        busy = wait_for("IP in use", lambda: agent.take_free("n1", pod))
        kube.set_subnets("subnet-sim00035")

        # the in-use IP stays, the free ones go; new IPs come from the remaining subnet
        def drained() -> bool:
            cur = kube.vpcips("n1")
            old = [o for o in cur if o["spec"]["subnetId"] == first]
            new = [o for o in cur if o["spec"]["subnetId"] == "subnet-sim00035"]
            return [o["metadata"]["name"] for o in old] == [busy] and len(new) >= 5

        wait_for("drained", drained, timeout=60)
        status = {s.subnet_id: s.state for s in kube.subnet_status()}
        assert status == {first: m.SUBNET_DRAINING, "subnet-sim00035": m.SUBNET_ACTIVE}
        agent.free(busy)
        kube.delete_pod("busy")
        wait_for(
            "old subnet gone",
            lambda: all(o["spec"]["subnetId"] == "subnet-sim00035" for o in kube.vpcips("n1")),
            timeout=60,
        )
        wait_for(
            "draining subnet dropped",
            lambda: {s.subnet_id for s in kube.subnet_status()} == {"subnet-sim00035"},
        )
        wait_for(
            "its ENI deleted",
            lambda: {e["spec"]["subnetId"] for e in kube.vpcenis("n1")} == {"subnet-sim00035"},
        )


def test_missing_configmap_is_a_condition_not_a_crash(kube: Kube, emu: EmulatorHandle) -> None:
    kube.add_node("n1", "ins-sim00001")
    with ipamd_inprocess(emu, kube.kubeconfig) as app:
        assert "missing" in app.subnets.condition
        assert kube.vpcenis("n1") == []
        kube.set_subnets(POD_SUBNET3)
        wait_for("ENIs once the ConfigMap appears", lambda: len(kube.vpcips("n1")) == 5)
        assert app.subnets.condition == "ok"


def test_node_removal_releases_dynamic_ips_and_enis(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    with ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        kube.delete_node("n1")
        wait_for("records gone", lambda: not kube.vpcips("n1") and not kube.vpcenis("n1"))
        wait_for("cloud clean", lambda: not emu.leaked_enis("cls-test0001"))


def test_reconcile_fixes_drift_and_logs_it(kube: Kube, emu: EmulatorHandle) -> None:
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", "ins-sim00001")
    with ipamd_inprocess(emu, kube.kubeconfig, "--leaked-eni-min-age", "1s") as app:
        wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        eni_id = kube.vpcenis("n1")[0]["metadata"]["name"]
        cloud = cloud_for(emu, cluster_id="cls-test0001")
        # a leaked ENI (tagged ours, no record, no node), an IP assigned behind
        # ipamd's back, and a VpcIP record deleted by hand
        leaked = cloud.create_eni(
            vpc_id=VPC, subnet_id=POD_SUBNET3, name="leak", secondary_ip_count=2
        )
        extra = cloud.assign_ips(eni_id, count=1)[0]
        victim = kube.vpcips("n1")[0]["metadata"]["name"]
        kube.api.delete(f"/apis/networking.tke.cloud.tencent.com/v1/vpcips/{victim}")
        fixes = wait_for("fixes", lambda: app.reconciler.fixes >= 3 and app.reconciler.fixes, 60)
        assert fixes >= 3
        wait_for(
            "leaked ENI deleted",
            lambda: leaked.eni_id not in {e["eni_id"] for e in emu.state()["enis"]},
        )
        names_now = {o["metadata"]["name"] for o in kube.vpcips("n1")}
        assert extra in names_now and victim in names_now
        assert set(cloud_ips(emu)) == names_now
