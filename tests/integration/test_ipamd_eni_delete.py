"""Deleting an emptied ENI when the cloud refuses the delete for a while.

Seen once in the churn suite (IPAMD_FAULT_SEED=23, 100 cycles): a livelock on
one ENI. The node controller detaches the empty ENI, DeleteNetworkInterface
fails; the reconcile loop finds the record "Detaching" and the ENI detached,
and re-attaches it ("was Detaching: now Attached"); the next detach reuses a
fixed ClientToken, which the cloud answers from its idempotency cache without
detaching; DeleteNetworkInterface is refused "attached, detach it first" —
for ever, the node requeued by its own status writes faster than its backoff.

Deterministic here: DeleteNetworkInterface fails (emulator fault) while a
static pod's move gives its old node's full ENI room again, so the empty ENI
the node had attached ahead (``ipamd.rules.pool.keep_ahead``) is to be
deleted, and a reconcile pass runs; once the fault is lifted the ENI must be
deleted."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest

from core import names
from core.ids import EniId, InstanceId, SubnetId, VpcId
from harness.ipamd_world import CLUSTER, POD_SUBNET3, VPC, pod_manifest
from ipamd.controllers.enis import EniOps
from ipamd.deps import Deps
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from tests.integration.ipamd_recording import ipamd_recording
from vpcsim.testing import EmulatorHandle

NODES = {"n1": "ins-sim00001", "n3": "ins-sim00003"}
NO_WARM = ("--min-prebind", "0", "--max-prebind", "0")


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


def our_enis(emu: EmulatorHandle, instance: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in emu.leaked_enis(CLUSTER)
        if instance is None
        or e["instance_id"] == instance
        or e["tags"].get(names.TAG_INSTANCE_ID) == instance
    ]


def dyn_pod(kube: Kube, name: str, node: str) -> dict[str, Any]:
    """A dynamic-IP pod bound to ``node`` requesting ``eni-ip: 1`` (it waits for an IP)."""
    body = pod_manifest(name, node, policy=None)
    one = {names.RESOURCE_ENI_IP: "1"}
    body["spec"]["containers"][0]["resources"] = {"requests": one, "limits": dict(one)}
    obj: dict[str, Any] = kube.api.create("/api/v1/namespaces/default/pods", body)
    return obj


def take(agent: AgentStandIn, pod: dict[str, Any]) -> Callable[[], str | None]:
    return lambda: agent.take_free("n3", pod)


def test_emptied_eni_is_deleted_after_the_cloud_refused_the_delete_for_a_while(
    kube: Kube, emu: EmulatorHandle
) -> None:
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM) as app:
        pod = kube.add_pod("web-0", "n3")
        rec = wait_for(
            "static IP on n3",
            lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
        )
        # with a warm target of 0 a node keeps one empty ENI ahead while its
        # others are full (ipamd.rules.pool.keep_ahead), its only ENI included:
        # fill web-0's ENI with dynamic pods, so n3 attaches one ahead, which the
        # move (room on web-0's ENI again) leaves to be deleted
        for i in range(8):
            p = dyn_pod(kube, f"dyn-{i}", "n3")
            wait_for(f"an IP for dyn-{i}", take(agent, p))
        wait_for("n3's ENI ahead", lambda: len(kube.vpcenis("n3")) == 2, 30)
        (old_eni,) = [
            e["metadata"]["name"] for e in kube.vpcenis("n3") if e["metadata"]["name"] != rec.eni
        ]
        agent.use(rec.ip, pod)
        agent.free(rec.ip)
        kube.delete_pod("web-0")
        wait_for(
            "web-0 deleted", lambda: kube.api.get_or_none(paths.pod("default", "web-0")) is None
        )
        emu.set_faults(internal_error_ratio=1.0, actions=["DeleteNetworkInterface"])
        moved = kube.add_pod("web-0", "n1")
        wait_for(
            "web-0's IP moved to n1",
            lambda: agent.static_ready("default/web-0", moved["metadata"]["uid"], "n1"),
        )
        wait_for(
            "n3's emptied ENI detached, its delete refused",
            lambda: any(e["eni_id"] == old_eni and e["instance_id"] is None for e in our_enis(emu)),
            30,
        )
        app.reconciler.run_once()  # finds the record Detaching and the ENI detached
        app.reconciler.run_once()
        emu.set_faults(internal_error_ratio=0.0, actions=[])
        wait_for(
            f"{old_eni} deleted once DeleteNetworkInterface works again",
            lambda: all(e["eni_id"] != old_eni for e in our_enis(emu)),
            60,
        )
        wait_for(
            f"VpcENI {old_eni} dropped",
            lambda: kube.api.get_or_none(paths.vpc_eni(old_eni)) is None,
            30,
        )


def test_detach_after_a_re_attach_really_detaches(emu: EmulatorHandle) -> None:
    """The same ENI detached from the same instance a second time (re-attached
    in between) must be detached: a ClientToken fixed per ENI and instance is
    answered from the cloud's idempotency cache, detaching nothing."""
    cloud = cloud_for(emu)
    ins = InstanceId(NODES["n3"])
    eni = cloud.create_eni(
        vpc_id=VpcId(VPC),
        subnet_id=SubnetId(POD_SUBNET3),
        name="detach-twice",
        tags={names.TAG_CLUSTER_ID: CLUSTER},
    )
    ops = EniOps(cast(Deps, SimpleNamespace(cloud=cloud)))

    def attached() -> InstanceId | None:
        return cloud.describe_enis(eni_ids=[eni.eni_id])[0].instance_id

    for _ in range(2):
        cloud.attach_eni(eni.eni_id, ins)
        assert attached() == ins
        ops.detach(eni.eni_id, ins)
        assert attached() is None, f"{eni.eni_id} still attached to {ins} after the detach"


def test_leaked_looking_eni_holding_a_claimed_address_without_record_is_kept(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """The leak clean-up judged "claimed" from VpcIP records alone: a detached ENI
    of ours with no VpcENI and no live node, holding the address a Reserved
    claim names but whose VpcIP is gone (``kubectl delete vip``), was deleted
    with the address. A claim naming an address keeps its ENI."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    with AgentStandIn(kube) as agent:
        with ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM):
            pod = kube.add_pod("web-0", "n3")
            rec = wait_for(
                "static IP on n3",
                lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
            )
            kube.delete_pod("web-0")
            wait_for(
                "claim Reserved",
                lambda: (
                    (c := kube.claim("web-0")) is not None
                    and c.get("status", {}).get("phase") == "Reserved"
                ),
            )
        # ipamd down: the records go, the ENI is detached, its node removed
        kube.api.delete(paths.vpc_ip(rec.ip))
        kube.api.delete(paths.vpc_eni(rec.eni))
        cloud_for(emu).detach_eni(EniId(rec.eni), InstanceId(NODES["n3"]))
        kube.delete_node("n3")
        with ipamd_recording(emu, kube.kubeconfig, *NO_WARM, "--leaked-eni-min-age", "1s") as (
            _,
            seen,
        ):
            wait_for("3 reconcile passes", lambda: seen.count("reconcile") >= 3, 90)
            held = {e["eni_id"]: e for e in our_enis(emu)}
            assert rec.eni in held, f"{rec.eni} holding claimed {rec.ip} was deleted as leaked"
            addrs = [a["address"] for a in held[rec.eni]["ips"] if not a["primary"]]
            assert rec.ip in addrs


def test_removed_nodes_eni_holding_a_claimed_address_without_record_is_kept(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """Node teardown judged an ENI empty from VpcIP records alone: the ENI of a
    removed node, parked for a Reserved claim's address, was deleted with that
    address once its VpcIP went (``kubectl delete vip``). The cloud decides:
    the address is recorded again as the claim's and the ENI stays parked."""
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM):
        pod = kube.add_pod("web-0", "n3")
        rec = wait_for(
            "static IP on n3",
            lambda: agent.static_ready("default/web-0", pod["metadata"]["uid"], "n3"),
        )
        kube.delete_pod("web-0")
        wait_for(
            "claim Reserved",
            lambda: (
                (c := kube.claim("web-0")) is not None
                and c.get("status", {}).get("phase") == "Reserved"
            ),
        )
        kube.delete_node("n3")
        wait_for(
            "n3's ENI parked (detached) for the claimed address",
            lambda: (
                (e := kube.api.get_or_none(paths.vpc_eni(rec.eni))) is not None
                and e.get("status", {}).get("phase") == "Detached"
            ),
        )
        kube.api.delete(paths.vpc_ip(rec.ip))
        with contextlib.suppress(AssertionError):  # bounded: the bug shows at once
            wait_for("the address gone from the cloud", lambda: rec.ip not in cloud_ips(emu), 10)
        assert rec.ip in cloud_ips(emu), f"claimed {rec.ip} was deleted with {rec.eni}"
        again = wait_for(
            "the address recorded again as the claim's",
            lambda: kube.api.get_or_none(paths.vpc_ip(rec.ip)),
            30,
        )
        assert again["spec"].get("claim") == "default/web-0", again["spec"]
