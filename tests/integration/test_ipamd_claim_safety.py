"""Static-IP claims and the release handshake under routine faults (issue 11,
items 2, 3, 4 and 10), against the real kube-apiserver and the emulator:

* a claim's move never takes an address that is not recorded as that claim's,
  nor one held by an ENI of another cluster; an address whose record was
  deleted is adopted back *as the claim's*, not as a warm dynamic IP;
* one failed claim status write does not give the claim a second IP;
* ipamd unassigns an IP only on the agent's answer to *this* release request
  (``status.releaseId == spec.releaseId``): a stale "Released", or an agent
  that does not echo the id, never counts; re-writing a record clears the
  previous holder's status;
* a pod not owned by a StatefulSet gets no claim, and a Warning naming the rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import models as m
from core import names
from core.ids import EniId
from harness.ipamd_world import POD_SUBNET3, VPC
from ipamd.controllers.enis import ip_spec
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError, load_configuration
from ipamd.kube.crds import CrdWriter
from localcluster.apifaults import rule
from localcluster.controlplane import ControlPlane
from localcluster.faultproxy import FaultProxy
from tests.emulator_client import cloud_for
from tests.integration.ipamd_harness import (
    AgentStandIn,
    Kube,
    cloud_ips,
    ipamd_inprocess,
    now3339,
    wait_for,
)
from vpcsim.testing import EmulatorHandle

OTHER_SUBNET3 = "subnet-sim00035"
CONFLICT = "StaticIPConflict"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    k.add_node("n3", "ins-sim00003")  # same zone (ap-guangzhou-3)
    yield k
    k.wipe()


def _phase(kube: Kube, name: str) -> str:
    return str(((kube.claim(name) or {}).get("status") or {}).get("phase", ""))


def start_static(kube: Kube, agent: AgentStandIn, name: str, node: str) -> tuple[str, str]:
    """(pod uid, IP) of a static pod that got its IP on ``node``."""
    pod = kube.add_pod(name, node)
    uid = pod["metadata"]["uid"]
    rec = wait_for(
        f"static IP for {name} on {node}", lambda: agent.static_ready(f"default/{name}", uid, node)
    )
    agent.use(rec.ip, pod)
    wait_for(
        "claim bound",
        lambda: (
            _phase(kube, name) == m.CLAIM_PHASE_BOUND
            and kube.claim(name)["status"].get("podUid") == uid
        ),  # type: ignore[index]
    )
    return uid, rec.ip


def reserve(kube: Kube, agent: AgentStandIn, name: str, ip: str) -> None:
    """The pod goes (CNI DEL on its node); its claim keeps the IP."""
    kube.delete_pod(name)
    agent.free(ip)
    wait_for("claim reserved", lambda: _phase(kube, name) == m.CLAIM_PHASE_RESERVED)


def record(kube: Kube, ip: str) -> dict[str, Any]:
    return kube.api.get(paths.vpc_ip(ip))


# --- item 2: never move an address that is not this claim's ---


def test_deleted_record_of_a_claimed_ip_comes_back_as_the_claims(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        reserve(kube, agent, "web-0", ip)
        eni = record(kube, ip)["spec"]["eniId"]
        kube.api.delete(paths.vpc_ip(ip))  # `kubectl delete vip`
        back = wait_for(
            "the record re-created by the reconcile", lambda: kube.api.get_or_none(paths.vpc_ip(ip))
        )
        assert back["spec"].get("claim") == "default/web-0", (
            f"claimed address {ip} adopted as {back['spec'].get('claim') or 'a warm dynamic IP'}"
        )
        assert back["spec"]["eniId"] == eni and cloud_ips(emu)[ip] == eni
        # the pod comes back on another node and gets its own address
        _, ip2 = start_static(kube, agent, "web-0", "n3")
        assert ip2 == ip


def test_move_refuses_an_address_recorded_for_someone_else(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        reserve(kube, agent, "web-0", ip)
        eni = record(kube, ip)["spec"]["eniId"]
        # the record now says: a dynamic IP, used by a running pod of n1
        kube.api.patch(paths.vpc_ip(ip), {"spec": {"claim": None, "reservedPodUid": None}})
        other = kube.add_pod("api-0", "n1", policy=None)
        agent.use(ip, other)
        kube.add_pod("web-0", "n3")
        wait_for(
            "a refusal, or the address moved",
            lambda: kube.events("default", CONFLICT) or cloud_ips(emu).get(ip) != eni,
        )
        assert cloud_ips(emu).get(ip) == eni, f"{ip} was moved away from the pod using it"
        rec = record(kube, ip)
        assert rec["spec"]["nodeName"] == "n1" and rec["status"]["podName"] == "api-0"
        ev = kube.events("default", CONFLICT)[0]
        assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == "web-0"
        assert ip in ev["message"]


def test_move_never_takes_an_address_from_another_clusters_eni(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        reserve(kube, agent, "web-0", ip)
        eni = record(kube, ip)["spec"]["eniId"]
        # the address now belongs to an ENI of another cluster
        ours = cloud_for(emu, cluster_id="cls-test0001")
        theirs = cloud_for(emu, cluster_id="cls-other001")
        foreign = theirs.create_eni(
            vpc_id=VPC,
            subnet_id=POD_SUBNET3,
            name="other-cluster",
            secondary_ip_count=0,
            tags={names.TAG_CLUSTER_ID: "cls-other001"},
        )
        ours.unassign_ips(EniId(eni), [ip])
        theirs.assign_ips(foreign.eni_id, addresses=[ip])
        kube.api.delete(paths.vpc_ip(ip))  # and its record is gone
        kube.add_pod("web-0", "n3")

        def holder() -> str:
            for e in emu.state()["enis"]:
                if any(a["address"] == ip for a in e["ips"]):
                    return str(e["eni_id"])
            return ""

        wait_for(
            "a refusal, or the address taken",
            lambda: kube.events("default", CONFLICT) or holder() != foreign.eni_id,
        )
        assert holder() == foreign.eni_id, f"{ip} was taken from another cluster's ENI"
        ev = kube.events("default", CONFLICT)[0]
        assert ev["type"] == "Warning" and foreign.eni_id in ev["message"]


# --- item 3: one failed status write, still one IP ---


def test_failed_claim_status_write_does_not_give_a_second_ip(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig) as app:
        crds = app.deps.crds
        real = crds.claim_status
        failed: list[str] = []

        def flaky(namespace: str, name: str, status: m.VpcIpClaimStatus) -> dict[str, Any]:
            if status.phase == m.CLAIM_PHASE_BOUND and not failed:
                failed.append(status.ip)
                raise KubeError("PATCH", paths.claim(namespace, name), 500, "injected")
            return real(namespace, name, status)

        crds.claim_status = flaky  # type: ignore[method-assign]
        _, ip = start_static(kube, agent, "web-0", "n1")
        assert failed, "the fault was not injected"
        claimed = sorted(
            o["metadata"]["name"]
            for o in kube.vpcips()
            if o["spec"].get("claim") == "default/web-0"
        )
        assert claimed == [ip], f"claim default/web-0 holds {claimed}"
        assert failed == [ip]


def test_claim_status_writes_failing_at_the_apiserver_give_no_second_ip(
    kube: Kube, emu: EmulatorHandle, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """The same through the apiserver fault proxy: the claim's first two status
    writes (``Pending`` at creation, then the one naming the new IP) get 500."""
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as proxy:
        proxy.set_rules(
            rule("error", verbs="patch", resources="vpcipclaims/status", limit=2, name="claim")
        )
        kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "via-proxy.kubeconfig")
        api = KubeApi(load_configuration(str(kc)))
        with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, api=api):
            _, ip = start_static(kube, agent, "web-0", "n1")
        assert proxy.plan.stats() == {"claim": 2}, proxy.plan.journal
    claimed = sorted(
        o["metadata"]["name"] for o in kube.vpcips() if o["spec"].get("claim") == "default/web-0"
    )
    assert claimed == [ip], f"claim default/web-0 holds {claimed}"


# --- item 4: only the answer to this request counts ---


@pytest.mark.parametrize("stale_id", [None, "an-earlier-request"])
def test_release_waits_for_the_answer_to_this_request(
    kube: Kube, emu: EmulatorHandle, stale_id: str | None
) -> None:
    kube.set_subnets(f"{POD_SUBNET3}:{OTHER_SUBNET3}")
    with ipamd_inprocess(emu, kube.kubeconfig):  # no agent: the test answers
        ips = wait_for(
            "warm IPs", lambda: len(kube.vpcips("n1")) == 5 and kube.vpcips("n1"), timeout=60
        )
        assert {o["spec"]["subnetId"] for o in ips} == {POD_SUBNET3}
        addrs = sorted(o["metadata"]["name"] for o in ips)
        stale, others = addrs[0], addrs[1:]
        # an answer left from an earlier request (None: an agent that does not echo)
        kube.api.patch(
            paths.vpc_ip(stale) + "/status",
            {"status": {"phase": m.IP_PHASE_RELEASED, "releaseId": stale_id, "updated": now3339()}},
        )
        kube.set_subnets(OTHER_SUBNET3)  # POD_SUBNET3 drains: every free IP is asked back
        wait_for(
            "release requested",
            lambda: all(record(kube, a)["spec"]["state"] == m.IP_STATE_RELEASING for a in others),
        )
        for a in others:  # the agent answers these requests
            rid = record(kube, a)["spec"].get("releaseId")
            kube.api.patch(
                paths.vpc_ip(a) + "/status",
                {"status": {"phase": m.IP_PHASE_RELEASED, "releaseId": rid, "updated": now3339()}},
            )
        wait_for("answered IPs returned", lambda: not set(others) & set(cloud_ips(emu)))
        assert stale in cloud_ips(emu), f"{stale} was unassigned on a stale answer"
        rec = record(kube, stale)
        assert rec["spec"]["state"] == m.IP_STATE_RELEASING and rec["spec"].get("releaseId")
        assert rec["spec"]["releaseId"] != stale_id
        kube.api.patch(
            paths.vpc_ip(stale) + "/status",
            {"status": {"phase": m.IP_PHASE_RELEASED, "releaseId": rec["spec"]["releaseId"]}},
        )
        wait_for("answered at last: returned", lambda: stale not in cloud_ips(emu))


class _Sink:
    def apply(self, obj: dict[str, Any] | None, *, deleted_key: str = "") -> None:
        return None


def test_rewriting_a_record_clears_the_previous_holders_status(kube: Kube) -> None:
    crds = CrdWriter(kube.api, _Sink(), _Sink(), _Sink())
    ip = "10.0.40.7"
    crds.create_ip(ip, ip_spec("n1", "eni-aaaa0001", POD_SUBNET3, "ap-guangzhou-3"))
    crds.patch_ip_spec(ip, {"state": m.IP_STATE_RELEASING, "releaseId": "r-1"})
    kube.api.patch(
        paths.vpc_ip(ip) + "/status",
        {
            "status": {
                "phase": m.IP_PHASE_RELEASED,
                "releaseId": "r-1",
                "podName": "old",
                "podUid": "u-old",
                "updated": now3339(),
            }
        },
    )
    # re-created on another node (a claim's move, a crash replayed)
    crds.create_ip(
        ip, ip_spec("n3", "eni-aaaa0003", POD_SUBNET3, "ap-guangzhou-3", claim="default/web-0")
    )
    obj = record(kube, ip)
    assert obj["spec"]["nodeName"] == "n3" and obj["spec"]["state"] == m.IP_STATE_ASSIGNED
    assert not obj["spec"].get("releaseId")
    assert not {k: v for k, v in (obj.get("status") or {}).items() if v}, obj.get("status")


# --- item 10: static IPs are for StatefulSet pods ---


@pytest.mark.parametrize(
    "owner",
    [
        None,
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7f9c", "uid": "u-rs-1"},
    ],
    ids=["bare-pod", "deployment-pod"],
)
def test_static_ip_only_for_statefulset_pods(
    kube: Kube, emu: EmulatorHandle, owner: dict[str, Any] | None
) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        pod = kube.add_pod("api-7f9c-x2k8d", "n1", owner=owner or {})
        ev = wait_for(
            "the rule's Warning", lambda: kube.events("default", "StaticIPNeedsStatefulSet")
        )
        assert ev[0]["type"] == "Warning" and ev[0]["involvedObject"]["name"] == "api-7f9c-x2k8d"
        assert "StatefulSet" in ev[0]["message"]
        assert kube.claim("api-7f9c-x2k8d") is None
        ip = wait_for("a dynamic IP", lambda: agent.take_free("n1", pod))
        assert not record(kube, ip)["spec"].get("claim")


def test_request_left_without_an_id_is_reopened_with_one(kube: Kube, emu: EmulatorHandle) -> None:
    """An IP asked back by an ipamd that gave requests no id (before an
    upgrade) is asked again with one: else no answer could ever count."""
    with ipamd_inprocess(emu, kube.kubeconfig):
        ips = wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5 and kube.vpcips("n1"))
    ip = sorted(o["metadata"]["name"] for o in ips)[0]
    kube.api.patch(paths.vpc_ip(ip), {"spec": {"state": m.IP_STATE_RELEASING}})
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig):

        def reopened() -> bool:
            rec = kube.api.get_or_none(paths.vpc_ip(ip))
            return rec is None or bool(rec["spec"].get("releaseId"))

        wait_for("the request re-opened with an id (or answered)", reopened)


def test_claim_of_a_pod_no_statefulset_owns_is_dropped_keeping_its_ip(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """A claim made for a pod that no StatefulSet owns (as before the rule, or
    the owner reference changed): the claim goes, the running pod keeps its
    address as a dynamic IP, and a Warning names the rule."""
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        uid, ip = start_static(kube, agent, "api-7f9c-x2k8d", "n1")
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7f9c", "uid": "u-rs-1"}
        kube.api.patch(
            paths.pod("default", "api-7f9c-x2k8d"),
            {"metadata": {"ownerReferences": [{**rs, "controller": True}]}},
        )
        wait_for("the claim dropped", lambda: kube.claim("api-7f9c-x2k8d") is None)
        rec = record(kube, ip)
        assert not rec["spec"].get("claim") and not rec["spec"].get("reservedPodUid")
        assert rec["status"]["podUid"] == uid and ip in cloud_ips(emu)
        ev = kube.events("default", "StaticIPNeedsStatefulSet")
        assert ev and ev[0]["involvedObject"]["name"] == "api-7f9c-x2k8d"
