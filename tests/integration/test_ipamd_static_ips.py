"""Static IPs (VpcIPClaim) against the real kube-apiserver and the emulator:
a StatefulSet pod recreated on another node of its zone keeps its IP; expiry
(flag and per-pod annotation); Immediate; --enable-ownerref; kubectl delete
vipc; bad annotation values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import models as m
from core import names
from harness.ipamd_world import POD_SUBNET3
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle


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


def bound(kube: Kube, name: str, uid: str) -> dict | None:  # type: ignore[type-arg]
    c = kube.claim(name)
    if (
        c
        and (c.get("status") or {}).get("phase") == m.CLAIM_PHASE_BOUND
        and c["status"].get("podUid") == uid
    ):
        return c
    return None


def start_static(
    kube: Kube, agent: AgentStandIn, name: str, node: str, **kw: object
) -> tuple[dict, str]:  # type: ignore[type-arg]
    pod = kube.add_pod(name, node, **kw)  # type: ignore[arg-type]
    uid = pod["metadata"]["uid"]
    rec = wait_for(
        f"static IP for {name} on {node}", lambda: agent.static_ready(f"default/{name}", uid, node)
    )
    agent.use(rec.ip, pod)
    wait_for("claim bound", lambda: bound(kube, name, uid))
    return pod, rec.ip


def stop_pod(kube: Kube, agent: AgentStandIn, name: str, ip: str) -> None:
    kube.delete_pod(name)
    agent.free(ip)  # CNI DEL on the node


def test_static_ip_follows_pod_to_another_node_of_its_zone(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        pod, ip = start_static(kube, agent, "web-0", "n1")
        claim = kube.claim("web-0")
        assert claim is not None
        assert claim["status"]["ip"] == ip and claim["status"]["subnetId"] == POD_SUBNET3
        assert claim["status"]["zone"] == "ap-guangzhou-3"
        assert names.FINALIZER_RELEASE_IP in claim["metadata"]["finalizers"]
        stop_pod(kube, agent, "web-0", ip)
        wait_for(
            "claim reserved",
            lambda: (
                (kube.claim("web-0") or {}).get("status", {}).get("phase") == m.CLAIM_PHASE_RESERVED
            ),
        )
        # recreated on n3: the same IP moves to n3's ENI, reserved for the new UID
        pod2, ip2 = start_static(kube, agent, "web-0", "n3")
        assert ip2 == ip
        assert pod2["metadata"]["uid"] != pod["metadata"]["uid"]
        vip = kube.api.get(paths.vpc_ip(ip))
        assert vip["spec"]["nodeName"] == "n3"
        eni_n3 = {e["metadata"]["name"] for e in kube.vpcenis("n3")}
        assert vip["spec"]["eniId"] in eni_n3
        assert cloud_ips(emu)[ip] == vip["spec"]["eniId"]
        evs = kube.events("default")
        assert any(e["reason"] == "IPMoved" and e["involvedObject"]["name"] == "web-0" for e in evs)


def test_old_uid_must_be_gone_before_the_ip_moves(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        kube.delete_pod("web-0")  # the API object goes, but the agent still reports use
        pod2 = kube.add_pod("web-0", "n3")
        uid2 = pod2["metadata"]["uid"]
        wait_for(
            "waiting event",
            lambda: [
                e for e in kube.events("default", "WaitingForIP") if "still uses" in e["message"]
            ],
        )
        assert agent.static_ready("default/web-0", uid2, "n3") is None
        assert kube.api.get(paths.vpc_ip(ip))["spec"]["nodeName"] == "n1"
        agent.free(ip)  # CNI DEL of the old pod
        rec = wait_for("moved", lambda: agent.static_ready("default/web-0", uid2, "n3"))
        assert rec.ip == ip


def test_claim_expires_after_the_flag_duration(kube: Kube, emu: EmulatorHandle) -> None:
    with (
        AgentStandIn(kube) as agent,
        ipamd_inprocess(emu, kube.kubeconfig, "--claim-expired-duration", "2s"),
    ):
        _, ip = start_static(kube, agent, "web-0", "n1")
        stop_pod(kube, agent, "web-0", ip)
        c = wait_for(
            "reserved with expiry",
            lambda: (
                (kube.claim("web-0") or {}).get("status", {}).get("expiresAt")
                and kube.claim("web-0")
            ),
        )
        assert c["status"]["lastSeen"]
        wait_for("claim gone", lambda: kube.claim("web-0") is None, timeout=60)
        wait_for("IP back to the cloud", lambda: ip not in cloud_ips(emu))


def test_annotation_overrides_the_flag(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(
            kube, agent, "web-0", "n1", annotations={names.ANNOTATION_CLAIM_EXPIRED_DURATION: "1s"}
        )
        assert kube.claim("web-0")["spec"]["expiredDuration"] == "1s"  # type: ignore[index]
        _, keep_ip = start_static(kube, agent, "web-1", "n1")
        stop_pod(kube, agent, "web-0", ip)
        stop_pod(kube, agent, "web-1", keep_ip)
        wait_for("web-0 claim expired", lambda: kube.claim("web-0") is None, timeout=60)
        c1 = kube.claim("web-1")
        assert c1 is not None and not c1["status"].get("expiresAt")  # flag default: never


def test_immediate_policy_gets_no_claim(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        wait_for("warm IPs", lambda: len(kube.vpcips("n1")) == 5)
        pod = kube.add_pod("api-0", "n1", policy="Immediate")
        ip = wait_for("dynamic IP", lambda: agent.take_free("n1", pod))
        kube.delete_pod("api-0")
        agent.free(ip)
        assert kube.claim("api-0") is None
        rec = kube.api.get(paths.vpc_ip(ip))
        assert not rec["spec"].get("claim")  # back in the warm pool, no reservation


def test_enable_ownerref_releases_with_the_workload(kube: Kube, emu: EmulatorHandle) -> None:
    sts = kube.api.create(
        "/apis/apps/v1/namespaces/default/statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {
                "serviceName": "web",
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    owner = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "web",
        "uid": sts["metadata"]["uid"],
        "controller": True,
    }
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, "--enable-ownerref"):
        _, ip = start_static(kube, agent, "web-0", "n1", owner=owner)
        c = kube.claim("web-0")
        assert (
            c is not None and c["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
        )
        stop_pod(kube, agent, "web-0", ip)
        wait_for(
            "reserved",
            lambda: (
                (kube.claim("web-0") or {}).get("status", {}).get("phase") == m.CLAIM_PHASE_RESERVED
            ),
        )
        assert kube.claim("web-0") is not None  # no expiry: stays while the workload exists
        kube.api.delete("/apis/apps/v1/namespaces/default/statefulsets/web")
        wait_for(
            "claim released with the workload", lambda: kube.claim("web-0") is None, timeout=60
        )
        wait_for("IP returned", lambda: ip not in cloud_ips(emu))


def test_kubectl_delete_vipc_releases_at_once(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        stop_pod(kube, agent, "web-0", ip)
        wait_for(
            "reserved",
            lambda: (
                (kube.claim("web-0") or {}).get("status", {}).get("phase") == m.CLAIM_PHASE_RESERVED
            ),
        )
        kube.api.delete(paths.claim("default", "web-0"))  # what `kubectl delete vipc web-0` sends
        wait_for("claim gone (finalizer removed)", lambda: kube.claim("web-0") is None, timeout=60)
        wait_for("IP really returned", lambda: ip not in cloud_ips(emu))
        assert any(e["reason"] == "IPReleased" for e in kube.events("default"))


@pytest.mark.parametrize(
    ("annotations", "policy", "reason"),
    [
        ({names.ANNOTATION_CLAIM_EXPIRED_DURATION: "ten minutes"}, "Never", "InvalidClaimDuration"),
        ({names.ANNOTATION_CLAIM_EXPIRED_DURATION: "-5m"}, "Never", "InvalidClaimDuration"),
        ({}, "Sometimes", "InvalidClaimPolicy"),
    ],
)
def test_bad_annotations_are_reported(
    kube: Kube, emu: EmulatorHandle, annotations: dict[str, str], policy: str, reason: str
) -> None:
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig):
        kube.add_pod("odd-0", "n1", policy=policy, annotations=annotations)
        ev = wait_for(f"{reason} event", lambda: kube.events("default", reason))
        assert ev[0]["type"] == "Warning" and ev[0]["involvedObject"]["name"] == "odd-0"
        if reason == "InvalidClaimDuration":
            c = wait_for("claim with the default", lambda: kube.claim("odd-0"))
            assert not c["spec"].get("expiredDuration")
        else:
            assert kube.claim("odd-0") is None


def test_static_ip_survives_its_node_removal(kube: Kube, emu: EmulatorHandle) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig):
        _, ip = start_static(kube, agent, "web-0", "n1")
        kube.delete_pod("web-0")
        kube.delete_node("n1")  # node gone: dynamic IPs and ENIs go, the claimed IP stays
        wait_for(
            "n1's dynamic IPs released",
            lambda: [o["metadata"]["name"] for o in kube.vpcips("n1")] == [ip],
        )
        parked = wait_for(
            "ENI parked",
            lambda: [
                e for e in kube.vpcenis("n1") if (e.get("status") or {}).get("phase") == "Detached"
            ],
        )
        assert len(parked) == 1 and len(kube.vpcenis("n1")) == 1
        assert ip in cloud_ips(emu)
        _, ip2 = start_static(kube, agent, "web-0", "n3")
        assert ip2 == ip
        wait_for("parked ENI deleted once empty", lambda: not kube.vpcenis("n1"))
        wait_for(
            "no leaked ENI in the cloud",
            lambda: (
                not [
                    e
                    for e in emu.state()["enis"]
                    if not e["primary"]
                    and e["instance_id"] is None
                    and e["tags"].get("tke-eni-cluster-id") == "cls-test0001"
                ]
            ),
        )
