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
