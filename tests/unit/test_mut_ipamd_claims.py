"""ipamd's claim release (``ClaimController.release``), step by step on the
model world (tests/mut_world.py): the mutation run (docs/mutation.md) showed
that the random model rarely reached these paths in its short setting, so
each rule gets a scenario of its own.

* ``kubectl delete vipc`` of a running StatefulSet pod: the pod keeps its
  address as a dynamic IP (durable mark, claim and reservation removed in
  one write), nothing moves in the cloud, the claim goes, an event says so;
* the claim of a pod that is gone is released through the agent's
  handshake: asked back with a request id, left alone until the agent
  grants that request, then unassigned in the cloud and its record deleted;
* a claim whose node is gone has no agent to ask: released at once."""

from __future__ import annotations

from ipamd.kube import paths
from tests.mut_world import (
    NODES,
    NS,
    IpamModel,
    claim_obj,
    cloud_holder,
    events,
    spec,
    tick,
    vpcip,
    world,
)

__all__ = ["world"]  # the fixture


def _web0(w: IpamModel) -> tuple[str, str]:
    p = w.pods["web-0"]
    c = claim_obj(w, "web-0")
    assert c is not None and p.running
    ip = c["status"]["ip"]
    assert p.ip == ip and spec(w, ip).get("claim") == f"{NS}/web-0"
    return ip, p.uid


def _released_event(w: IpamModel, ip: str) -> None:
    evs = events(w, "IPReleased")
    assert len(evs) == 1, evs
    e = evs[0]
    assert e["type"] == "Normal"
    assert e["involvedObject"]["kind"] == "Pod"
    assert (e["involvedObject"]["namespace"], e["involvedObject"]["name"]) == (NS, "web-0")
    assert e["message"].startswith(f"static IP {ip} of claim {NS}/web-0 released: ")


def test_delete_vipc_of_a_running_pod_keeps_its_ip_as_a_dynamic_one(world: IpamModel) -> None:
    w = world
    ip, uid = _web0(w)
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w)
    s = spec(w, ip)
    assert not s.get("claim") and not s.get("reservedPodUid"), s
    assert s.get("unclaimedPodUid") == uid and s.get("state") == "Assigned", s
    assert cloud_holder(w, ip) == NODES["n2"]  # nothing moved or unassigned
    assert claim_obj(w, "web-0") is None  # finalizer removed, claim gone
    _released_event(w, ip)
    tick(w, 2)
    assert spec(w, ip).get("unclaimedPodUid") == uid and claim_obj(w, "web-0") is None
    w.settle()  # the model's invariants: the pod still runs with ip, no second claim
    assert w.pods["web-0"].ip == ip


def test_claim_of_a_gone_pod_is_released_only_after_the_agents_grant(world: IpamModel) -> None:
    w = world
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])  # the StatefulSet is scaled down: the IP stays reserved
    tick(w)
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Reserved"
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId"), s
    rid = s["releaseId"]
    assert s.get("claim") == f"{NS}/web-0"
    tick(w, 2)  # no answer from the agent yet: nothing happens, the request keeps its id
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId") == rid
    assert cloud_holder(w, ip) == NODES["n2"]
    assert claim_obj(w, "web-0") is not None  # the finalizer holds it until released
    assert not events(w, "IPReleased")
    w._agent_pass("n2")  # the agent grants the request
    assert (vpcip(w, ip) or {}).get("status", {}).get("releaseId") == rid
    tick(w)
    assert cloud_holder(w, ip) is None, "the granted IP was not unassigned"
    assert vpcip(w, ip) is None
    assert claim_obj(w, "web-0") is None
    _released_event(w, ip)


def test_claim_on_a_node_that_is_gone_is_released_without_asking(world: IpamModel) -> None:
    w = world
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])
    tick(w)
    w.user.delete("/api/v1/nodes/n2")  # the node is deleted: no agent answers any more
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w)
    assert cloud_holder(w, ip) is None, "the claim's IP stayed assigned"
    assert vpcip(w, ip) is None
    assert claim_obj(w, "web-0") is None
    _released_event(w, ip)


def test_delete_vip_then_vipc_of_a_running_pod_records_the_ip_as_its_own(
    world: IpamModel,
) -> None:
    """The claimed address lost its record (``kubectl delete vip``), then the
    claim goes too while the pod runs: the address is recorded again, as the
    running pod's own dynamic IP (the durable mark), where the cloud has it."""
    w = world
    ip, uid = _web0(w)
    w.user.delete(paths.vpc_ip(ip))
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w, 3)
    s = spec(w, ip)
    assert not s.get("claim") and s.get("unclaimedPodUid") == uid, s
    assert s.get("nodeName") == "n2" and s.get("state") == "Assigned", s
    assert cloud_holder(w, ip) == NODES["n2"]
    assert claim_obj(w, "web-0") is None
    w.settle()
    assert w.pods["web-0"].ip == ip


def test_delete_vipc_after_the_record_lost_its_claim_keeps_the_ip_with_the_pod(
    world: IpamModel,
) -> None:
    """The record no longer names the claim (re-made as warm), the pod runs:
    the durable mark goes on that record, so the address is never trimmed or
    handed to another pod."""
    w = world
    ip, uid = _web0(w)
    w.user.patch(paths.vpc_ip(ip), {"spec": {"claim": None, "reservedPodUid": None}})
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w, 3)
    s = spec(w, ip)
    assert not s.get("claim") and s.get("unclaimedPodUid") == uid, s
    assert s.get("state") == "Assigned", s
    assert cloud_holder(w, ip) == NODES["n2"]
    assert claim_obj(w, "web-0") is None
    w.settle()
    assert w.pods["web-0"].ip == ip


def test_delete_vipc_never_asks_back_an_ip_not_recorded_as_the_claims(
    world: IpamModel,
) -> None:
    w = world
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])
    tick(w)
    w.user.patch(paths.vpc_ip(ip), {"spec": {"claim": None, "reservedPodUid": None}})
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w, 3)
    s = spec(w, ip)
    assert s.get("state") == "Assigned" and not s.get("releaseId"), s
    assert claim_obj(w, "web-0") is None


def test_a_claims_release_left_open_without_an_id_is_reopened_with_one(
    world: IpamModel,
) -> None:
    w = world
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])
    tick(w)
    w.user.patch(paths.vpc_ip(ip), {"spec": {"state": "Releasing"}})  # an older ipamd's
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId"), s
    w._agent_pass("n2")
    tick(w)
    assert cloud_holder(w, ip) is None and claim_obj(w, "web-0") is None


def test_a_claim_dropped_by_ipamd_is_deleted_and_the_running_pod_keeps_its_ip(
    world: IpamModel,
) -> None:
    """Not a user's delete: the pod is no StatefulSet's any more, so ipamd
    drops the claim itself (and deletes the claim object)."""
    w = world
    ip, uid = _web0(w)
    pod = w.store.get("pods", NS, "web-0")
    assert pod is not None
    pod["metadata"]["ownerReferences"][0]["kind"] = "ReplicaSet"
    w.store.put("pods", pod)
    tick(w, 2)
    assert claim_obj(w, "web-0") is None, "the dropped claim was left behind"
    s = spec(w, ip)
    assert not s.get("claim") and s.get("unclaimedPodUid") == uid, s
    assert cloud_holder(w, ip) == NODES["n2"]


def test_pod_back_on_the_same_node_gets_its_ip_reserved_for_its_new_uid(
    world: IpamModel,
) -> None:
    w = world
    ip, old_uid = _web0(w)
    w._delete(w.pods["web-0"])
    w._agent_pass("n2")  # the agent reports the old pod's IP free
    tick(w)
    w._create("web-0", "n2", "sts")
    new_uid = w.pods["web-0"].uid
    assert new_uid != old_uid
    tick(w)
    s = spec(w, ip)
    assert s.get("reservedPodUid") == new_uid and s.get("state") == "Assigned", s
    assert not s.get("releaseId")
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Bound" and c["status"]["podUid"] == new_uid
    w.settle()
    assert w.pods["web-0"].ip == ip


def test_pod_back_on_the_node_a_move_started_from_takes_the_request_back(
    world: IpamModel,
) -> None:
    w = world
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])
    w._agent_pass("n2")
    tick(w)
    w._create("web-0", "n1", "sts")  # the move starts: n2 is asked to release
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId"), s
    w._delete(w.pods["web-0"])
    w._create("web-0", "n2", "sts")  # back where the IP is, before n2 granted
    new_uid = w.pods["web-0"].uid
    tick(w, 2)
    s = spec(w, ip)
    assert s.get("state") == "Assigned" and not s.get("releaseId"), s
    assert s.get("reservedPodUid") == new_uid
    assert cloud_holder(w, ip) == NODES["n2"]
    w.settle()
    assert w.pods["web-0"].ip == ip
