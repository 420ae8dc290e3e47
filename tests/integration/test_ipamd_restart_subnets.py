"""An ipamd restart must not empty the warm pools (issue 11, item 1).

Each test runs ipamd once to build node n1's pool (one ENI, five warm IPs on
the accepted subnet), then produces one of the ordinary events that used to
make the *next* ipamd start with no subnet decision, or with a refused one
installed as-is, and restarts ipamd: the pool, the ENI, the node condition and
the subnet status the scheduler extender reads must all stay as they were.
Real kube-apiserver, the cloud emulator through the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import models as m
from core import names
from harness.ipamd_world import POD_SUBNET3
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, cloud_ips, ipamd_inprocess, wait_for
from tests.integration.ipamd_recording import ipamd_recording
from vpcsim.testing import EmulatorHandle

INSTANCE = "ins-sim00001"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    yield k
    k.wipe()


def pool_of(kube: Kube, emu: EmulatorHandle) -> dict[str, Any]:
    enis = sorted(
        e["eni_id"]
        for e in emu.state()["enis"]
        if not e["primary"] and e["instance_id"] == INSTANCE
    )
    return {
        "vpcips": sorted(o["metadata"]["name"] for o in kube.vpcips("n1")),
        "cloud_ips": sorted(cloud_ips(emu)),
        "enis": enis,
        "vpcenis": sorted(o["metadata"]["name"] for o in kube.vpcenis("n1")),
    }


def first_run(kube: Kube, emu: EmulatorHandle) -> dict[str, Any]:
    """ipamd builds n1's pool on POD_SUBNET3, then stops; returns the pool."""
    kube.set_subnets(POD_SUBNET3)
    kube.add_node("n1", INSTANCE)
    with ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("5 warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        wait_for(
            "ENI attached",
            lambda: (
                [e["status"].get("phase") for e in kube.vpcenis("n1")] == [m.ENI_PHASE_ATTACHED]
            ),
        )
        wait_for(
            "subnet status published",
            lambda: (
                [s.subnet_id for s in kube.subnet_status() if s.state == m.SUBNET_ACTIVE]
                == [POD_SUBNET3]
            ),
        )
        before = pool_of(kube, emu)
    assert len(before["vpcips"]) == 5 and len(before["enis"]) == 1, before
    assert before["vpcips"] == before["cloud_ips"]
    return before


def synced_n1(seen: list[str], times: int = 3) -> None:
    """Wait until the restarted ipamd has worked on n1 a few times (the periodic
    pass re-queues every node each second in tests)."""
    wait_for(f"node n1 synced {times} times", lambda: seen.count("node:n1") >= times, 60)


def assert_pool_intact(kube: Kube, emu: EmulatorHandle, before: dict[str, Any]) -> None:
    releasing = [
        o["metadata"]["name"]
        for o in kube.vpcips("n1")
        if (o.get("spec") or {}).get("state") == m.IP_STATE_RELEASING
    ]
    assert releasing == [], f"warm IPs asked back after the restart: {releasing}"
    assert pool_of(kube, emu) == before
    cond = kube.node_condition("n1") or {}
    assert cond.get("reason") != "NoSubnetInZone", cond
    active = [s.subnet_id for s in kube.subnet_status() if s.state == m.SUBNET_ACTIVE]
    assert active == [POD_SUBNET3], f"the extender would see no subnet: {kube.subnet_status()}"


def test_configmap_missing_for_a_moment_at_start(kube: Kube, emu: EmulatorHandle) -> None:
    before = first_run(kube, emu)
    # GitOps prune/recreate: the ConfigMap is gone when ipamd starts
    kube.api.delete(paths.configmap(names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME))
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        assert "missing" in app.subnets.condition
        assert_pool_intact(kube, emu, before)
        kube.set_subnets(POD_SUBNET3)  # ... and back
        wait_for("subnets ok again", lambda: app.subnets.condition == "ok")
        n = seen.count("node:n1")
        wait_for("n1 synced again", lambda: seen.count("node:n1") >= n + 2, 60)
        assert_pool_intact(kube, emu, before)


def test_value_the_running_ipamd_tolerated(kube: Kube, emu: EmulatorHandle) -> None:
    before = first_run(kube, emu)
    kube.set_subnets(f"{POD_SUBNET3}:subnet-nothere1")  # refused by a running ipamd
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        assert "does not exist" in app.subnets.condition
        assert_pool_intact(kube, emu, before)
        invalid = [s.subnet_id for s in kube.subnet_status() if s.state == m.SUBNET_INVALID]
        assert invalid == ["subnet-nothere1"]


def test_foreign_cvm_put_into_the_accepted_subnet(kube: Kube, emu: EmulatorHandle) -> None:
    before = first_run(kube, emu)
    emu.add_instance(POD_SUBNET3, name="someone-elses-vm")  # after the subnet was accepted
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        assert app.subnets.condition == "ok"
        assert_pool_intact(kube, emu, before)
        refused = [
            e for e in kube.events("kube-system", "InvalidSubnet") if "not empty" in e["message"]
        ]
        assert refused == [], refused


def test_describe_subnets_throttled_during_the_first_sync(kube: Kube, emu: EmulatorHandle) -> None:
    before = first_run(kube, emu)
    emu.set_faults(throttle_ratio=1.0, actions=["DescribeSubnets"])
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        assert_pool_intact(kube, emu, before)
        emu.clear_faults()
        wait_for("subnets checked once the cloud answers", lambda: app.subnets.condition == "ok")
        n = seen.count("node:n1")
        wait_for("n1 synced again", lambda: seen.count("node:n1") >= n + 2, 60)
        assert_pool_intact(kube, emu, before)


def test_first_ever_start_with_the_cloud_throttled_touches_nothing(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """No decision was ever accepted (nothing persisted) and the cloud cannot be
    asked: ipamd must wait, not treat every subnet as gone."""
    before = first_run(kube, emu)
    kube.api.delete(paths.configmap(names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP))
    emu.set_faults(throttle_ratio=1.0, actions=["DescribeSubnets"])
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        releasing = [
            o["metadata"]["name"]
            for o in kube.vpcips("n1")
            if (o.get("spec") or {}).get("state") == m.IP_STATE_RELEASING
        ]
        assert releasing == []
        assert pool_of(kube, emu) == before
        cond = kube.node_condition("n1") or {}
        assert cond.get("reason") != "NoSubnetInZone", cond
        emu.clear_faults()
        wait_for("subnets checked once the cloud answers", lambda: app.subnets.condition == "ok")
        n = seen.count("node:n1")
        wait_for("n1 synced again", lambda: seen.count("node:n1") >= n + 2, 60)
        assert_pool_intact(kube, emu, before)


def test_refused_value_with_nothing_persisted_installs_nothing(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """A first start (nothing published) whose ConfigMap is refused: the refusal
    is reported, and the pools built earlier are not judged against an empty set."""
    before = first_run(kube, emu)
    kube.api.delete(paths.configmap(names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP))
    kube.set_subnets(f"{POD_SUBNET3}:subnet-nothere1")
    with ipamd_recording(emu, kube.kubeconfig) as (app, seen):
        synced_n1(seen)
        assert "does not exist" in app.subnets.condition
        releasing = [
            o["metadata"]["name"]
            for o in kube.vpcips("n1")
            if (o.get("spec") or {}).get("state") == m.IP_STATE_RELEASING
        ]
        assert releasing == []
        assert pool_of(kube, emu) == before
        cond = kube.node_condition("n1") or {}
        assert cond.get("reason") != "NoSubnetInZone", cond
        invalid = [s.subnet_id for s in kube.subnet_status() if s.state == m.SUBNET_INVALID]
        assert invalid == ["subnet-nothere1"]
        kube.set_subnets(POD_SUBNET3)  # fixed: accepted, the pool carries on
        wait_for("subnets ok", lambda: app.subnets.condition == "ok")
        n = seen.count("node:n1")
        wait_for("n1 synced again", lambda: seen.count("node:n1") >= n + 2, 60)
        assert_pool_intact(kube, emu, before)
