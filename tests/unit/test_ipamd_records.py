"""ipamd.rules.providerid and ipamd.rules.records: object summaries from API dicts."""

from __future__ import annotations

import pytest

from core import models as m
from ipamd.rules.providerid import instance_id_of, parse_provider_id
from ipamd.rules.records import claim_from_obj, ip_from_obj, node_from_obj, pod_from_obj


@pytest.mark.parametrize(
    ("pid", "want"),
    [
        ("qcloud:///800003/ins-abcd1234", "ins-abcd1234"),
        ("tencentcloud://ins-abcd1234", "ins-abcd1234"),
        ("tencentcloud:///ap-guangzhou-3/ins-abcd1234", "ins-abcd1234"),
        ("ins-abcd1234", "ins-abcd1234"),
        ("kwok://node-1", None),
        ("", None),
        (None, None),
        ("qcloud:///800003/ins-ABCD", None),
    ],
)
def test_provider_id(pid: str | None, want: str | None) -> None:
    assert parse_provider_id(pid) == want


def test_instance_id_fallbacks() -> None:
    assert (
        instance_id_of(None, {"tke.cloud.tencent.com/instance-id": "ins-aaaaaaaa"}, {})
        == "ins-aaaaaaaa"
    )
    assert (
        instance_id_of("", {}, {"cloud.tencent.com/node-instance-id": "ins-bbbbbbbb"})
        == "ins-bbbbbbbb"
    )
    assert (
        instance_id_of(
            "qcloud:///1/ins-cccccccc", {"tke.cloud.tencent.com/instance-id": "ins-aaaaaaaa"}, {}
        )
        == "ins-cccccccc"
    )


def test_ip_roundtrip_with_core_models() -> None:
    spec = m.VpcIpSpec(
        node_name="n1", eni_id="eni-1", subnet_id="s", zone="z", claim="ns/p", reserved_pod_uid="u"
    )
    status = m.VpcIpStatus(phase=m.IP_PHASE_IN_USE, pod_uid="u", updated="2026-01-01T00:00:00Z")
    rec = ip_from_obj(
        {"metadata": {"name": "10.0.0.5"}, "spec": spec.to_dict(), "status": status.to_dict()}
    )
    assert (rec.ip, rec.node, rec.eni, rec.claim, rec.reserved_uid) == (
        "10.0.0.5",
        "n1",
        "eni-1",
        "ns/p",
        "u",
    )
    assert rec.used and not rec.dynamic and rec.pod_uid == "u"


def test_node_and_pod_summaries() -> None:
    node = node_from_obj(
        {
            "metadata": {
                "name": "n1",
                "labels": {
                    "topology.kubernetes.io/zone": "ap-guangzhou-3",
                    "node.kubernetes.io/instance-type": "S5.LARGE8",
                },
            },
            "spec": {"providerID": "qcloud:///800003/ins-abcd1234"},
        }
    )
    assert (node.instance_id, node.zone, node.instance_type) == (
        "ins-abcd1234",
        "ap-guangzhou-3",
        "S5.LARGE8",
    )
    assert pod_from_obj({"metadata": {"name": "p", "namespace": "d"}}) is None
    p = pod_from_obj(
        {
            "metadata": {
                "name": "p",
                "namespace": "d",
                "uid": "u",
                "annotations": {"tke.cloud.tencent.com/vpc-ip-claim-delete-policy": "Never"},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "StatefulSet",
                        "name": "web",
                        "uid": "o",
                        "controller": True,
                    }
                ],
            },
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"},
        }
    )
    assert p is not None and p.policy == "Never" and p.node == "n1" and p.owner is not None
    assert p.owner.kind == "StatefulSet"


def test_claim_summary() -> None:
    c = claim_from_obj(
        {
            "metadata": {
                "name": "p",
                "namespace": "d",
                "uid": "x",
                "finalizers": ["networking.tke.cloud.tencent.com/release-ip"],
                "deletionTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {"policy": "Never", "expiredDuration": "1m"},
            "status": m.VpcIpClaimStatus(phase="Bound", ip="10.0.0.5", pod_uid="u").to_dict(),
        }
    )
    assert (
        c.key == "d/p"
        and c.has_finalizer
        and c.deleting
        and c.pod_uid == "u"
        and c.ip == "10.0.0.5"
    )
