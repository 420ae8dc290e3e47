"""The unclaimed mark and the node controller's pool work, against the real
kube-apiserver and the emulator. ``kubectl delete vipc`` of a running
StatefulSet pod leaves its address a dynamic IP marked with the pod's UID
(``spec.unclaimedPodUid``, core.models). While that pod exists, the address
is its own even when the pod has no sandbox for a while (its agent then
reports the address free): the warm-pool trim and the subnet drain must not
ask it back, or the pod's next sandbox gets another address and the mark is
lost with the record. Once the pod is gone, the mark means nothing and the
address is ordinary surplus."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import models as m
from harness.ipamd_world import POD_SUBNET3
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from tests.integration.test_ipamd_static_ips import start_static
from vpcsim.testing import EmulatorHandle

OTHER_SUBNET3 = "subnet-sim00035"  # pod-3b, same zone
ONE_WARM = ("--min-prebind", "1", "--max-prebind", "1")
NO_WARM = ("--min-prebind", "0", "--max-prebind", "0")


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    yield k
    k.wipe()


def vpcip(kube: Kube, ip: str) -> dict[str, Any] | None:
    return next((o for o in kube.vpcips() if o["metadata"]["name"] == ip), None)


def unclaimed_without_sandbox(
    kube: Kube, emu: EmulatorHandle, agent: AgentStandIn
) -> tuple[str, str, str]:
    """web-0 runs on n1 with a static IP beside one warm IP; its claim is
    deleted (it keeps the address, marked); ipamd stops; the pod's sandbox goes
    (the agent reports the address free) while the pod itself stays.
    Returns (pod UID, its marked address, the warm address)."""
    with ipamd_inprocess(emu, kube.kubeconfig, *ONE_WARM):
        wait_for("one warm IP on n1", lambda: len(kube.vpcips("n1")) == 1)
        (warm,) = [o["metadata"]["name"] for o in kube.vpcips("n1")]
        pod, ip = start_static(kube, agent, "web-0", "n1")
        uid = pod["metadata"]["uid"]
        kube.api.delete(paths.claim("default", "web-0"))  # `kubectl delete vipc web-0`
        wait_for("claim gone", lambda: kube.claim("web-0") is None)
        wait_for(
            "the address kept as the pod's dynamic IP, marked",
            lambda: (
                (o := vpcip(kube, ip)) is not None
                and not o["spec"].get("claim")
                and o["spec"].get("unclaimedPodUid") == uid
            ),
        )
    agent.free(ip)  # the sandbox is gone (CNI DEL); the pod is not
    assert kube.api.get_or_none(paths.pod("default", "web-0")) is not None
    return uid, ip, warm


def assert_kept(kube: Kube, emu: EmulatorHandle, ip: str, uid: str, what: str) -> None:
    assert ip in cloud_ips(emu), f"{what}: {ip}, marked for the existing pod {uid}, was unassigned"
    rec = vpcip(kube, ip)
    assert rec is not None, f"{what}: the VpcIP of {ip} (marked for the existing pod) is gone"
    assert rec["spec"].get("state", m.IP_STATE_ASSIGNED) == m.IP_STATE_ASSIGNED, (
        f"{what}: {ip}, marked for the existing pod {uid}, was asked back: {rec['spec']}"
    )
    assert rec["spec"].get("unclaimedPodUid") == uid, rec["spec"]


def test_trim_keeps_an_unclaimed_address_while_its_pod_exists(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent:
        uid, ip, warm = unclaimed_without_sandbox(kube, emu, agent)
        # no warm IPs wanted now: the free warm IP is surplus, the marked one is not
        with ipamd_inprocess(emu, kube.kubeconfig, *NO_WARM):
            wait_for("the surplus warm IP trimmed", lambda: warm not in cloud_ips(emu))
            wait_for("no release request open on n1", lambda: not agent.asked("n1"))
            assert_kept(kube, emu, ip, uid, "trim")
            # the pod goes: the mark means nothing now, the address is surplus
            kube.delete_pod("web-0")
            wait_for(
                f"{ip} trimmed once its pod is gone", lambda: ip not in cloud_ips(emu), timeout=90
            )


def test_drain_keeps_an_unclaimed_address_while_its_pod_exists(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent:
        uid, ip, warm = unclaimed_without_sandbox(kube, emu, agent)
        with ipamd_inprocess(emu, kube.kubeconfig, *ONE_WARM):
            wait_for("ipamd serves n1", lambda: vpcip(kube, warm) is not None)
            kube.set_subnets(OTHER_SUBNET3)  # POD_SUBNET3 drains
            wait_for("the draining subnet's warm IP released", lambda: warm not in cloud_ips(emu))
            wait_for(
                f"a warm IP in {OTHER_SUBNET3}",
                lambda: any(o["spec"]["subnetId"] == OTHER_SUBNET3 for o in kube.vpcips("n1")),
            )
            wait_for("no release request open on n1", lambda: not agent.asked("n1"))
            assert_kept(kube, emu, ip, uid, "drain")
            kube.delete_pod("web-0")
            wait_for(
                f"{ip} drained once its pod is gone", lambda: ip not in cloud_ips(emu), timeout=90
            )


def test_a_release_request_open_on_an_unclaimed_address_is_taken_back(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """An address asked back (by an ipamd that did not honour the mark) while
    the marked pod exists: the request is taken back, never finished, even
    when the agent answers it."""
    with AgentStandIn(kube) as agent:
        uid, ip, warm = unclaimed_without_sandbox(kube, emu, agent)
        kube.api.patch(
            paths.vpc_ip(ip), {"spec": {"state": m.IP_STATE_RELEASING, "releaseId": "older-ipamd"}}
        )
        wait_for(f"the agent's grant of {ip}", lambda: agent.grants and agent.grants[-1][0] == ip)
        with ipamd_inprocess(emu, kube.kubeconfig, *ONE_WARM):
            wait_for(
                "the request taken back",
                lambda: (
                    (o := vpcip(kube, ip)) is not None
                    and o["spec"].get("state") == m.IP_STATE_ASSIGNED
                ),
            )
            assert_kept(kube, emu, ip, uid, "an open request")
            assert not (vpcip(kube, ip) or {})["spec"].get("releaseId")
            assert vpcip(kube, warm) is not None  # the warm pool is as it was
