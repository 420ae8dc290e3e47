"""ipamd's pod EIPs (--enable-pod-eip) against the real kube-apiserver and the
cloud emulator, through the real SDK:

- a pod annotated eip-attributes gets an EIP (tagged: cluster, pod, uid, policy)
  with the attributes' bandwidth and ISP, the pod annotation eip-public-ip and an
  event; associated with the pod's private IP (and its ENI) once it has one;
  released when the pod goes;
- bad attributes: a Warning event on the pod and nothing allocated;
- Never on a StatefulSet's pod: the EIP outlives the pod (disassociated, kept)
  and its next pod of that name gets the same EIP, associated with its new IP;
  the StatefulSet gone: the kept EIP is released;
- ipamd down while a pod goes: the sweep of the next ipamd releases its EIP;
  an EIP of ours tagged with no pod is released after --eip-leak-min-age;
- faults: AssociateAddress failing (task FAILED) or throttled, AllocateAddresses
  answered 5xx, lost replies: retried, and in the end exactly one EIP, bound.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from core import eip as ce
from harness.ipamd_world import CLUSTER, POD_SUBNET3, SPEC
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle, run_emulator

ON = ("--enable-pod-eip", "true", "--min-prebind", "3", "--max-prebind", "3")
ATTRS = {ce.ANNOTATION_EIP_ATTRIBUTES: json.dumps({"Bandwidth": "10", "ISP": "BGP"})}


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
    with run_emulator(SPEC, faults={"rate_limits": False}) as handle:
        yield handle


def eips(emu: EmulatorHandle) -> list[dict[str, Any]]:
    return list(emu.state()["eips"]["addresses"])


def calls(emu: EmulatorHandle, action: str) -> int:
    return emu.emulator.api.calls.get(action, 0)


def pod(kube: Kube, name: str) -> dict[str, Any] | None:
    return kube.api.get_or_none(f"/api/v1/namespaces/default/pods/{name}")


def events(kube: Kube, reason: str, name: str) -> list[str]:
    return [
        e["message"]
        for e in kube.events("default", reason)
        if e["involvedObject"]["kind"] == "Pod" and e["involvedObject"]["name"] == name
    ]


def free_ips(kube: Kube, node: str, n: int) -> list[tuple[str, str]]:
    """``n`` (ip, eni) of the node's warm pool (waits for them)."""

    def ready() -> list[tuple[str, str]] | None:
        got = [
            (o["metadata"]["name"], o["spec"]["eniId"])
            for o in kube.vpcips(node)
            if not o["spec"].get("claim") and o["spec"].get("state", "Assigned") == "Assigned"
        ]
        return got[:n] if len(got) >= n else None

    found: list[tuple[str, str]] = wait_for(f"{n} warm IPs on {node}", ready, 30)
    return found


def run_on(kube: Kube, name: str, ip: str) -> None:
    """The kubelet's report: the pod runs with ``ip``."""
    kube.api._call(
        "PATCH",
        f"/api/v1/namespaces/default/pods/{name}/status",
        body={"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
        content_type="application/merge-patch+json",
    )


def statefulset(kube: Kube, name: str) -> dict[str, Any]:
    """A StatefulSet object (the test control plane runs no controller: nothing acts
    on it) and the controller reference its pods carry."""
    obj = kube.api.create(
        "/apis/apps/v1/namespaces/default/statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": 0,
                "serviceName": name,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": name,
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def bound(emu: EmulatorHandle, ip: str) -> dict[str, Any] | None:
    return next((e for e in eips(emu) if e["private_ip"] == ip and e["status"] == "BIND"), None)


def test_immediate_pod_gets_an_eip_bound_to_its_ip_and_released_with_it(
    kube: Kube, emu: EmulatorHandle
) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        (ip, eni), *_ = free_ips(kube, "n1", 1)
        kube.add_pod("web", "n1", policy=None, annotations=ATTRS)
        wait_for("an EIP", lambda: [e for e in eips(emu) if e["status"] == "UNBIND"])
        (e,) = eips(emu)
        assert (e["bandwidth"], e["isp"]) == (10, "BGP")
        uid = pod(kube, "web")["metadata"]["uid"]  # type: ignore[index]
        assert e["tags"][ce.TAG_POD] == "default/web"
        assert e["tags"][ce.TAG_POD_UID] == uid
        assert e["tags"][ce.TAG_POLICY] == "Immediate"
        assert e["tags"]["tke-eni-cluster-id"] == CLUSTER
        wait_for(
            "the public IP on the pod",
            lambda: (
                (pod(kube, "web") or {})["metadata"]["annotations"].get(ce.ANNOTATION_EIP_PUBLIC_IP)
                == e["address_ip"]
            ),
        )
        ann = (pod(kube, "web") or {})["metadata"]["annotations"]
        assert ann[ce.ANNOTATION_EIP_ID] == e["address_id"], ann
        assert events(kube, ce.REASON_ALLOCATED, "web")
        run_on(kube, "web", ip)
        wait_for("bound to the pod's IP", lambda: bound(emu, ip))
        assert bound(emu, ip)["eni_id"] == eni  # type: ignore[index]
        wait_for("an EipAssociated event", lambda: events(kube, ce.REASON_ASSOCIATED, "web"))
        kube.delete_pod("web")
        wait_for("released", lambda: not eips(emu), 30)
    assert calls(emu, "AllocateAddresses") == 1


def test_bad_attributes_warn_and_allocate_nothing(kube: Kube, emu: EmulatorHandle) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        kube.add_pod(
            "bad",
            "n1",
            policy=None,
            annotations={ce.ANNOTATION_EIP_ATTRIBUTES: '{"Bandwidth":"100","Isp":"BGP"}'},
        )
        kube.add_pod(
            "worse", "n1", policy=None, annotations={ce.ANNOTATION_EIP_ATTRIBUTES: "{oops"}
        )
        wait_for("a Warning on bad", lambda: events(kube, ce.REASON_INVALID_ATTRIBUTES, "bad"))
        wait_for("a Warning on worse", lambda: events(kube, ce.REASON_INVALID_ATTRIBUTES, "worse"))
        (msg,) = events(kube, ce.REASON_INVALID_ATTRIBUTES, "bad")
        assert "unknown key(s) Isp" in msg, msg
    assert calls(emu, "AllocateAddresses") == 0 and not eips(emu)


def test_never_keeps_the_eip_for_the_statefulsets_next_pod(kube: Kube, emu: EmulatorHandle) -> None:
    ann = {**ATTRS, ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "Never"}
    with ipamd_inprocess(emu, kube.kubeconfig, *ON, "--eip-leak-min-age", "2s"):
        owner = statefulset(kube, "db")
        (ip1, _), (ip2, _) = free_ips(kube, "n1", 2)
        kube.add_pod("db-0", "n1", policy=None, annotations=ann, owner=owner)
        run_on(kube, "db-0", ip1)
        wait_for("bound to db-0's IP", lambda: bound(emu, ip1))
        (first,) = eips(emu)
        assert first["tags"][ce.TAG_POLICY] == "Never"
        assert first["tags"][ce.TAG_OWNER] == "apps/v1/StatefulSet/db"
        assert first["tags"][ce.TAG_OWNER_UID] == owner["uid"]
        kube.delete_pod("db-0")
        wait_for("disassociated, kept", lambda: [e["status"] for e in eips(emu)] == ["UNBIND"])
        wait_for("an EipKept event", lambda: events(kube, ce.REASON_KEPT, "db-0"))
        kube.add_pod("db-0", "n1", policy=None, annotations=ann, owner=owner)
        run_on(kube, "db-0", ip2)  # recreated with another private IP
        wait_for("the same EIP bound to the new IP", lambda: bound(emu, ip2))
        assert [e["address_id"] for e in eips(emu)] == [first["address_id"]]
        assert calls(emu, "AllocateAddresses") == 1
        # the StatefulSet goes: its kept EIP goes too (at the next sweep, once the
        # EIP is older than --eip-leak-min-age)
        kube.delete_pod("db-0")
        wait_for("kept again", lambda: [e["status"] for e in eips(emu)] == ["UNBIND"])
        kube.api.delete("/apis/apps/v1/namespaces/default/statefulsets/db")
        app_sweep = calls(emu, "DescribeAddresses")
        wait_for("released", lambda: not eips(emu), 30)
        assert calls(emu, "DescribeAddresses") > app_sweep


def test_leaks_are_released_by_the_sweep(kube: Kube, emu: EmulatorHandle) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        kube.add_pod("gone", "n1", policy=None, annotations=ATTRS)
        wait_for("an EIP", lambda: [e for e in eips(emu) if e["status"] == "UNBIND"])
    kube.delete_pod("gone")  # while ipamd is down
    w = emu.emulator.world
    with w.lock:  # and an EIP of ours tagged with no pod (e.g. an older release)
        from vpcsim.eip_model import Eip

        stray = Eip(
            "eip-stray001", "203.0.113.200", status="UNBIND", created_time="2020-01-01T00:00:00Z"
        )
        stray.tags = {"tke-eni-cluster-id": CLUSTER}
        w.eips.addresses[stray.address_id] = stray
        other = Eip(
            "eip-other001", "203.0.113.201", status="UNBIND", created_time="2020-01-01T00:00:00Z"
        )
        other.tags = {"tke-eni-cluster-id": "cls-other001"}
        w.eips.addresses[other.address_id] = other
    with ipamd_inprocess(emu, kube.kubeconfig, *ON, "--eip-leak-min-age", "2s"):
        wait_for(
            "only the other cluster's EIP left",
            lambda: [e["address_id"] for e in eips(emu)] == ["eip-other001"],
            30,
        )


@pytest.mark.parametrize(
    "faults",
    [
        {"task_fail_ratio": 0.5, "actions": ["AssociateAddress", "AllocateAddresses"]},
        {
            "throttle_ratio": 0.6,
            "throttle_code": "RequestLimitExceeded",
            "actions": ["AssociateAddress", "AllocateAddresses", "DescribeAddresses"],
        },
        {"error_5xx_ratio": 0.4, "actions": ["AssociateAddress", "AllocateAddresses"]},
        {
            "lost_reply_ratio": 0.5,
            "actions": [
                "AllocateAddresses",
                "AssociateAddress",
                "DisassociateAddress",
                "ReleaseAddresses",
            ],
        },
    ],
    ids=["task-failed", "throttled", "5xx", "lost-reply"],
)
def test_faults_are_retried_and_nothing_leaks(
    kube: Kube, emu: EmulatorHandle, faults: dict[str, Any]
) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        (ip, _), *_ = free_ips(kube, "n1", 1)
        emu.set_faults(rate_limits=False, **faults)
        kube.add_pod("f", "n1", policy=None, annotations=ATTRS)
        run_on(kube, "f", ip)
        wait_for("bound despite the faults", lambda: bound(emu, ip), 60)
        assert len(eips(emu)) == 1
        kube.delete_pod("f")
        wait_for("released despite the faults", lambda: not eips(emu), 60)
        emu.clear_faults()


def test_claim_policy_warnings(kube: Kube, emu: EmulatorHandle) -> None:
    """``Never`` on a pod no StatefulSet controls: Warning EipNeverNeedsStatefulSet,
    an EIP all the same, tagged Immediate and released with the pod; a policy that
    is neither Never nor Immediate: Warning InvalidEipClaimPolicy, nothing allocated."""
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        kube.add_pod(
            "bare",
            "n1",
            policy=None,
            annotations={**ATTRS, ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "Never"},
        )
        kube.add_pod(
            "odd",
            "n1",
            policy=None,
            annotations={**ATTRS, ce.ANNOTATION_EIP_CLAIM_DELETE_POLICY: "Sometimes"},
        )
        wait_for("a Warning on bare", lambda: events(kube, ce.REASON_NEEDS_STATEFULSET, "bare"))
        wait_for("a Warning on odd", lambda: events(kube, ce.REASON_INVALID_POLICY, "odd"))
        (msg,) = events(kube, ce.REASON_INVALID_POLICY, "odd")
        assert "'Sometimes'" in msg, msg
        (msg,) = events(kube, ce.REASON_NEEDS_STATEFULSET, "bare")
        assert "no controller" in msg, msg
        wait_for("bare's EIP", lambda: [e for e in eips(emu) if e["status"] == "UNBIND"])
        (e,) = eips(emu)
        assert e["tags"][ce.TAG_POD] == "default/bare"
        assert e["tags"][ce.TAG_POLICY] == "Immediate"
        assert ce.TAG_OWNER not in e["tags"]
        kube.delete_pod("bare")
        wait_for("released with the pod", lambda: not eips(emu), 30)
        wait_for("an EipReleased event", lambda: events(kube, ce.REASON_RELEASED, "bare"))
    assert calls(emu, "AllocateAddresses") == 1  # none for odd


@pytest.mark.parametrize(
    ("faults", "fragment"),
    [
        ({"task_fail_ratio": 1.0, "actions": ["AssociateAddress"]}, "associate"),
        (
            {
                "throttle_ratio": 1.0,
                "throttle_code": "RequestLimitExceeded",
                "actions": ["AssociateAddress"],
            },
            "RequestLimitExceeded",
        ),
    ],
    ids=["task-failed", "throttled"],
)
def test_association_failing_warns_and_is_retried_until_it_succeeds(
    kube: Kube, emu: EmulatorHandle, faults: dict[str, Any], fragment: str
) -> None:
    """AssociateAddress failing every time (its task ends FAILED, or every call is
    throttled): a Warning EipFailed on the pod, the same EIP kept (no second
    allocation) and the association retried; once the cloud recovers the EIP is
    bound to the pod's IP, and released with the pod: nothing leaked."""
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        (ip, eni), *_ = free_ips(kube, "n1", 1)
        emu.set_faults(rate_limits=False, **faults)
        kube.add_pod("f", "n1", policy=None, annotations=ATTRS)
        run_on(kube, "f", ip)
        wait_for("an EipFailed event", lambda: events(kube, ce.REASON_FAILED, "f"), 60)
        msg = events(kube, ce.REASON_FAILED, "f")[0]
        assert msg.startswith("associate:") and fragment in msg, msg
        tries = calls(emu, "AssociateAddress")
        wait_for("retried", lambda: calls(emu, "AssociateAddress") > tries, 60)
        (e,) = eips(emu)  # one EIP: retried, not allocated again
        assert e["status"] != "BIND", e  # (BINDING while a retry's task runs)
        emu.clear_faults()
        emu.set_faults(rate_limits=False)
        wait_for("bound once the cloud recovers", lambda: bound(emu, ip), 60)
        assert bound(emu, ip)["eni_id"] == eni  # type: ignore[index]
        assert [x["address_id"] for x in eips(emu)] == [e["address_id"]]
        assert calls(emu, "AllocateAddresses") == 1
        kube.delete_pod("f")
        wait_for("released with the pod", lambda: not eips(emu), 60)


def test_quota_exhausted_warns_and_the_pod_gets_one_once_an_eip_is_freed(
    kube: Kube, emu: EmulatorHandle
) -> None:
    """The account's EIP quota reached: AllocateAddresses refused, a Warning EipFailed
    on the waiting pod, retried; when another pod's EIP is released the waiting pod
    gets one. Nothing is left once both pods are gone."""
    w = emu.emulator.world
    with w.lock:
        w.eips.quota = 1
    with ipamd_inprocess(emu, kube.kubeconfig, *ON):
        kube.add_pod("first", "n1", policy=None, annotations=ATTRS)
        wait_for("first's EIP", lambda: [e for e in eips(emu) if e["status"] == "UNBIND"])
        kube.add_pod("second", "n1", policy=None, annotations=ATTRS)
        wait_for("an EipFailed event on second", lambda: events(kube, ce.REASON_FAILED, "second"))
        msg = events(kube, ce.REASON_FAILED, "second")[0]
        assert msg.startswith("allocate:") and "AddressQuotaLimitExceeded" in msg, msg
        assert [e["tags"][ce.TAG_POD] for e in eips(emu)] == ["default/first"]
        kube.delete_pod("first")
        wait_for(
            "second's EIP",
            lambda: [e["tags"][ce.TAG_POD] for e in eips(emu)] == ["default/second"],
            60,
        )
        kube.delete_pod("second")
        wait_for("none left", lambda: not eips(emu), 30)
