"""A running StatefulSet pod whose claim was deleted (``kubectl delete vipc``)
keeps its address as its own; if the address's record then goes too
(``kubectl delete vip``, the durable unclaimed mark with it), a new ipamd
leader must still not give the pod a claim with another address while it
runs with the first one (found by the model-based test in CI, seed of the
day: 'static pod web-0 runs with 10.0.32.8, its claim has 10.0.32.13')."""

from __future__ import annotations

from ipamd.kube import paths
from tests.model_world import NS
from tests.mut_world import claim_obj, spec, tick, world
from tests.unit.test_model_ipam import IpamModel

__all__ = ["world"]


def test_running_pod_with_deleted_claim_and_record_gets_no_claim_with_another_ip(
    world: IpamModel,
) -> None:
    w = world
    p = w.pods["web-0"]
    c = claim_obj(w, "web-0")
    assert c is not None and p.running
    ip = c["status"]["ip"]
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w, 2)
    assert spec(w, ip).get("unclaimedPodUid") == p.uid
    w.user.delete(paths.vpc_ip(ip))  # the mark goes with the record
    w.leader_handover()
    w.ipamd_reconcile()
    tick(w, 3)
    c = claim_obj(w, "web-0")
    got = ((c or {}).get("status") or {}).get("ip")
    assert c is None or got in (None, "", ip), (
        f"web-0 runs with {ip}; a new claim was given {got}")
    w.settle()
    assert w.pods["web-0"].ip == ip
