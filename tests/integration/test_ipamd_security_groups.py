"""ipamd's --enable-security-groups against the real kube-apiserver and the
cloud emulator, through the real SDK:

- off (the default): ipamd creates ENIs without groups and never touches them;
- on: an existing ENI without groups gets the node's (its primary ENI's, in
  order); a new ENI gets them at CreateNetworkInterface (no association call);
  when the node's groups change its ENIs follow within a reconcile period;
- the nec's spec.securityGroupIds overrides the node's groups; a bad value:
  a Warning event on the nec, the previous target kept (status says so);
- a cloud error between two calls of a change: a Warning event, the ENI left
  with a state between the two (never without groups), the change finished by
  the retry once the cloud answers again."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.ipamd_world import POD_SUBNET3, SPEC
from ipamd import metrics
from ipamd.controllers.necctl import nec_path
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, ipamd_inprocess, wait_for
from tests.integration.test_ipamd_nec import kubectl
from vpcsim.testing import EmulatorHandle, run_emulator

DEFAULT, WEB, DB, OPS = "sg-node0001", "sg-web00001", "sg-db000001", "sg-ops00001"
ON = ("--enable-security-groups", "--min-prebind", "2", "--max-prebind", "2")
ASSOCIATE = "AssociateNetworkInterfaceSecurityGroups"
DISASSOCIATE = "DisassociateNetworkInterfaceSecurityGroups"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    yield k
    k.wipe()


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    spec = copy.deepcopy(SPEC)
    spec["security_groups"] = [
        {"id": DEFAULT, "name": "default", "default": True},
        {"id": WEB, "name": "web"},
        {"id": DB, "name": "db"},
        {"id": OPS, "name": "ops"},
    ]
    with run_emulator(spec, faults={"rate_limits": False}) as handle:
        yield handle


def node_groups(emu: EmulatorHandle, instance_id: str, groups: list[str]) -> None:
    """The instance's groups (its primary ENI's), as ModifyInstancesAttribute sets them."""
    w = emu.emulator.world
    with w.lock:
        w.enis[w.instances[instance_id].primary_eni_id].security_groups = list(groups)


def eni_groups(emu: EmulatorHandle, instance_id: str) -> dict[str, list[str]]:
    """Secondary ENI id -> its groups, for the ENIs on ``instance_id``."""
    return {
        e["eni_id"]: list(e["security_groups"])
        for e in emu.state()["enis"]
        if e["instance_id"] == instance_id and not e["primary"]
    }


def all_are(emu: EmulatorHandle, instance_id: str, groups: list[str]) -> bool:
    got = eni_groups(emu, instance_id)
    return bool(got) and all(g == groups for g in got.values())


def calls(emu: EmulatorHandle, action: str) -> int:
    return emu.emulator.api.calls.get(action, 0)


def metric(name: str, **labels: str) -> float:
    """ipamd's metric (its registry is this process's: ipamd runs in-process)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


CHANGES = "tke_ipamd_security_group_changes_total"
OUT_OF_SYNC = "tke_ipamd_security_group_enis_out_of_sync"
INVALID = "tke_ipamd_security_group_invalid_overrides_total"


def events(kube: Kube, reason: str, kind: str, name: str) -> list[str]:
    return [
        e["message"]
        for e in kube.events("default", reason)
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    ]


def nec_status(kube: Kube, node: str) -> dict[str, Any]:
    obj = kube.api.get_or_none(nec_path(node)) or {}
    return obj.get("status") or {}


def test_off_untouched_then_on_existing_and_new_enis_follow_the_node(
    kube: Kube, emu: EmulatorHandle
) -> None:
    node_groups(emu, "ins-sim00001", [WEB, DEFAULT])
    with ipamd_inprocess(emu, kube.kubeconfig, "--min-prebind", "2", "--max-prebind", "2") as app:
        wait_for("an ENI on n1", lambda: eni_groups(emu, "ins-sim00001"))
        app.reconciler.run_once()  # a reconcile period passes
        assert app.security_groups is None
    assert list(eni_groups(emu, "ins-sim00001").values()) == [[]]
    assert calls(emu, ASSOCIATE) == calls(emu, DISASSOCIATE) == 0

    ok_before = metric(CHANGES, action="associate", result="ok")
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        # the existing ENI without groups gets the node's, in order
        wait_for(
            "n1's ENI holds web, default", lambda: all_are(emu, "ins-sim00001", [WEB, DEFAULT])
        )
        assert calls(emu, ASSOCIATE) == 1
        wait_for(
            "the association counted",
            lambda: metric(CHANGES, action="associate", result="ok") == ok_before + 1,
        )
        wait_for(
            "an event on n1",
            lambda: events(kube, "SecurityGroupsUpdated", "Node", "n1"),
        )
        wait_for(
            "the nec's status",
            lambda: (
                nec_status(kube, "n1").get("securityGroupIds") == [WEB, DEFAULT]
                and nec_status(kube, "n1").get("securityGroupSource") == "node"
            ),
        )
        # a new ENI gets them at creation: no association call for it
        before = calls(emu, ASSOCIATE)
        node_groups(emu, "ins-sim00003", [DB])
        kube.add_node("n3", "ins-sim00003")
        wait_for("n3's ENI holds db", lambda: all_are(emu, "ins-sim00003", [DB]))
        assert calls(emu, ASSOCIATE) == before
        # the node's groups change (order too): its ENIs follow within a reconcile
        # period (5 s here)
        node_groups(emu, "ins-sim00001", [DEFAULT, OPS, WEB])
        wait_for("n1's ENI follows", lambda: all_are(emu, "ins-sim00001", [DEFAULT, OPS, WEB]), 30)
        assert all_are(emu, "ins-sim00003", [DB])
        wait_for(
            "the change reported",
            lambda: any(
                f"-> ['{DEFAULT}', '{OPS}', '{WEB}'] (node)" in m
                for m in events(kube, "SecurityGroupsUpdated", "Node", "n1")
            ),
        )


def test_nec_override_and_a_bad_one_keeps_the_previous(
    kube: Kube, emu: EmulatorHandle, tmp_path: Path
) -> None:
    node_groups(emu, "ins-sim00001", [DEFAULT])
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        wait_for("n1's ENI holds default", lambda: all_are(emu, "ins-sim00001", [DEFAULT]))
        kube.api.patch(nec_path("n1"), {"spec": {"securityGroupIds": [DB, WEB]}})
        wait_for("the override applied", lambda: all_are(emu, "ins-sim00001", [DB, WEB]))
        wait_for(
            "status: the override",
            lambda: nec_status(kube, "n1").get("securityGroupSource") == "nodeENIConfig",
        )
        assert nec_status(kube, "n1")["securityGroupIds"] == [DB, WEB]
        # the real kubectl: the groups in force in the wide column SECURITY-GROUPS
        wide = kubectl(kube, tmp_path, "get", "nec", "n1", "-o", "wide").splitlines()
        col = wide[0].index("SECURITY-GROUPS")
        assert DB in wide[1][col:] and WEB in wide[1][col:], wide
        invalid_before = metric(INVALID)
        kube.api.patch(nec_path("n1"), {"spec": {"securityGroupIds": ["sg-1", WEB]}})
        wait_for(
            "a Warning event on the nec",
            lambda: events(kube, "InvalidSecurityGroups", "NodeENIConfig", "n1"),
        )
        (msg,) = events(kube, "InvalidSecurityGroups", "NodeENIConfig", "n1")
        assert "'sg-1' is not a security group id" in msg, msg
        assert f"keeping ['{DB}', '{WEB}'] (nodeENIConfig)" in msg, msg
        assert metric(INVALID) > invalid_before
        wait_for(
            "the problem in the status",
            lambda: "sg-1" in nec_status(kube, "n1").get("securityGroupMessage", ""),
        )
        assert nec_status(kube, "n1")["securityGroupIds"] == [DB, WEB]
        node_groups(emu, "ins-sim00001", [OPS])  # the node changes: the override still rules
        after_change = calls(emu, "DescribeNetworkInterfaces")
        wait_for("a pass after", lambda: calls(emu, "DescribeNetworkInterfaces") > after_change + 2)
        assert all_are(emu, "ins-sim00001", [DB, WEB])
        # removed: the node's groups again
        kube.api.patch(nec_path("n1"), {"spec": {"securityGroupIds": None}})
        wait_for("back to the node's", lambda: all_are(emu, "ins-sim00001", [OPS]))
        wait_for(
            "status: the node's, no message",
            lambda: (
                nec_status(kube, "n1").get("securityGroupSource") == "node"
                and not nec_status(kube, "n1").get("securityGroupMessage")
            ),
        )


def test_cloud_error_mid_change_is_retried_and_never_leaves_the_eni_bare(
    kube: Kube, emu: EmulatorHandle
) -> None:
    node_groups(emu, "ins-sim00001", [DEFAULT])
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        wait_for("n1's ENI holds default", lambda: all_are(emu, "ins-sim00001", [DEFAULT]))
        # default -> web, db: associate web, disassociate default, associate db;
        # the disassociation fails (after the adapter's own retries)
        errors_before = metric(CHANGES, action="disassociate", result="error")
        emu.set_faults(internal_error_ratio=1.0, actions=[DISASSOCIATE])
        node_groups(emu, "ins-sim00001", [WEB, DB])
        wait_for(
            "a Warning event naming the failed call",
            lambda: events(kube, "SecurityGroupsFailed", "Node", "n1"),
            30,
        )
        (eni,) = eni_groups(emu, "ins-sim00001")
        assert eni_groups(emu, "ins-sim00001")[eni] == [DEFAULT, WEB]  # between, not bare
        assert metric(CHANGES, action="disassociate", result="error") > errors_before
        assert metric(OUT_OF_SYNC) == 1  # the ENI, until the retry lands
        emu.clear_faults()
        emu.set_faults(rate_limits=False)
        wait_for("the change finished", lambda: all_are(emu, "ins-sim00001", [WEB, DB]), 60)
        wait_for("none out of sync", lambda: metric(OUT_OF_SYNC) == 0)
