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

from ipamd import metrics
from ipamd.kube import paths
from ipamd.state import CLAIM
from tests.model_fakes import KubeFaultPlan
from tests.model_world import POD_SUBNET, VPC, make_cloud
from tests.mut_world import (
    NODES,
    NS,
    IpamModel,
    claim_obj,
    cloud_holder,
    events,
    node_ips,
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


# --- allocation ---------------------------------------------------------------------


def _claim_with_finalizer(w: IpamModel, name: str, node: str) -> None:
    """A new StatefulSet pod: ipamd makes its claim and puts its finalizer on
    (one sync each); the next sync allocates."""
    w._create(name, node, "sts")
    for _ in range(4):
        c = claim_obj(w, name)
        if c is not None and c["metadata"].get("finalizers"):
            return
        tick(w)
    raise AssertionError(f"claim {name} never got its finalizer")


def _cloud_vs_records(w: IpamModel, node: str) -> tuple[set[str], set[str]]:
    inst = NODES[node]
    cloud = {
        a.address
        for e in w._cloud_enis().values()
        if e.instance_id == inst and not e.primary
        for a in e.ips
        if not a.primary
    }
    return cloud, set(node_ips(w, node))


def test_allocation_writes_the_whole_claim_and_record_at_once(world: IpamModel) -> None:
    w = world
    allocations = _histogram_count("claim")
    w.emu.faults.update({"lost_reply_ratio": 1.0, "actions": ["AssignPrivateIpAddresses"]})
    try:
        w._create("web-1", "n1", "sts")
        for _ in range(4):  # claim, finalizer, IP: the cloud's replies to first tries are lost
            if ((claim_obj(w, "web-1") or {}).get("status") or {}).get("ip"):
                break
            tick(w)
    finally:
        w.emu.faults.update({"lost_reply_ratio": 0.0, "actions": []})
    c = claim_obj(w, "web-1")
    assert c is not None
    st_ = c["status"]
    ip, uid = st_.get("ip"), w.pods["web-1"].uid
    assert ip and st_.get("phase") == "Bound" and st_.get("podUid") == uid, st_
    assert st_.get("nodeName") == "n1" and st_.get("subnetId") == POD_SUBNET, st_
    assert st_.get("zone") == "ap-guangzhou-3" and st_.get("lastSeen"), st_
    assert not st_.get("expiresAt"), st_
    s = spec(w, ip)
    assert s.get("claim") == f"{NS}/web-1" and s.get("reservedPodUid") == uid, s
    assert s.get("nodeName") == "n1" and s.get("subnetId") == POD_SUBNET, s
    assert s.get("zone") == "ap-guangzhou-3" and s.get("eniId"), s
    assert cloud_holder(w, ip) == NODES["n1"]
    cloud, records = _cloud_vs_records(w, "n1")
    assert cloud == records, f"assigned but unrecorded: {sorted(cloud - records)}"
    assigned = [e for e in events(w, "IPAssigned") if e["involvedObject"]["name"] == "web-1"]
    assert len(assigned) == 1 and assigned[0]["type"] == "Normal"
    assert assigned[0]["message"].startswith(f"static IP {ip} ({POD_SUBNET}, ap-guangzhou-3)")
    assert _histogram_count("claim") == allocations + 1  # tke_ipamd_allocation_seconds{kind}


def _histogram_count(kind: str) -> float:
    v = metrics.REGISTRY.get_sample_value("tke_ipamd_allocation_seconds_count", {"kind": kind})
    return v or 0.0


def test_a_failed_claim_status_write_after_allocation_gives_no_second_ip(
    world: IpamModel,
) -> None:
    w = world
    # the second status write of web-1's claim (after "Pending": the allocation's) fails
    w._live_ipamd().kube.faults = KubeFaultPlan(1, "error", "/vpcipclaims/web-1/status")
    w._create("web-1", "n1", "sts")
    for _ in range(4):
        held = [o for o in w.store.items("vpcips") if o["spec"].get("claim") == f"{NS}/web-1"]
        if held:
            break
        tick(w)  # claim, finalizer, then the IP: assigned and recorded, the status fails
    assert len(held) == 1
    tick(w)  # the retry (also within the same pass) finds the record and adopts it
    held = [o for o in w.store.items("vpcips") if o["spec"].get("claim") == f"{NS}/web-1"]
    assert len(held) == 1, "a second IP for the claim"
    ip = held[0]["metadata"]["name"]
    c = claim_obj(w, "web-1")
    assert c is not None
    st_ = c["status"]
    assert st_.get("ip") == ip and st_.get("phase") == "Bound" and st_.get("nodeName") == "n1"
    assert st_.get("podUid") == w.pods["web-1"].uid and st_.get("subnetId") == POD_SUBNET
    cloud, records = _cloud_vs_records(w, "n1")
    assert cloud == records
    w.settle()
    assert w.pods["web-1"].ip == ip


def test_a_full_subnet_makes_the_static_ip_wait(world: IpamModel) -> None:
    w = world
    world_ = w.emu.world
    with world_.lock:
        taken = world_.allocate(POD_SUBNET, world_.available_count(POD_SUBNET))
    _claim_with_finalizer(w, "web-1", "n1")
    c = claim_obj(w, "web-1")
    assert c is not None and not (c.get("status") or {}).get("ip")
    assert not [o for o in w.store.items("vpcips") if o["spec"].get("claim") == f"{NS}/web-1"]
    waiting = [e for e in events(w, "WaitingForSubnet") if e["involvedObject"]["name"] == "web-1"]
    assert waiting and waiting[0]["type"] == "Warning"
    msgs = [e["message"] for e in waiting]
    assert f"subnet {POD_SUBNET} is out of IPs: ResourceInsufficient.Subnet" in msgs, msgs
    assert POD_SUBNET in w._live_ipamd().app.state.exhausted
    ipamd = w._live_ipamd()
    ipamd.app.queue.add(CLAIM + f"{NS}/web-1")
    ipamd.drain()  # marked full: no further try, the claim waits for a subnet
    msgs = [
        e["message"]
        for e in events(w, "WaitingForSubnet")
        if e["involvedObject"]["name"] == "web-1"
    ]
    assert any(m.startswith("no ENI with room on node n1") for m in msgs), msgs
    with world_.lock:
        world_.used[POD_SUBNET] -= set(taken)
    tick(w)  # the refresh sees room again: it queues the waiting claim by itself
    assert POD_SUBNET not in ipamd.app.state.exhausted
    c = claim_obj(w, "web-1")
    assert c is not None and c["status"].get("ip"), "the waiting claim was not retried"
    assert f"{NS}/web-1" not in ipamd.app.state.waiting_claims()
    w.settle()  # on its own: web-1 runs with its claim's IP
    assert w.pods["web-1"].running and w.pods["web-1"].ip == c["status"]["ip"]


# --- moves --------------------------------------------------------------------------


def _move_web0(w: IpamModel, to: str) -> tuple[str, str]:
    """web-0 goes and comes back on node ``to``; its old node reported it gone."""
    ip, _ = _web0(w)
    w._delete(w.pods["web-0"])
    w._agent_pass("n2")
    tick(w)
    w._create("web-0", to, "sts")
    return ip, w.pods["web-0"].uid


def test_a_move_waits_for_the_old_nodes_grant_then_follows_in_cloud_and_records(
    world: IpamModel,
) -> None:
    w = world
    moved_before = _histogram_count("move")
    ip, uid = _move_web0(w, "n1")
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId") and s.get("nodeName") == "n2", s
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Migrating" and c["status"]["nodeName"] == "n1"
    moving = [e for e in events(w, "IPMoving") if e["involvedObject"]["name"] == "web-0"]
    assert moving and moving[-1]["message"] == f"moving static IP {ip} from n2 to n1"
    tick(w, 2)  # not granted yet: the address stays where it is
    assert cloud_holder(w, ip) == NODES["n2"] and spec(w, ip).get("nodeName") == "n2"
    w._agent_pass("n2")  # the old node's agent lets go
    tick(w)
    assert cloud_holder(w, ip) == NODES["n1"]
    s = spec(w, ip)
    assert s.get("nodeName") == "n1" and s.get("claim") == f"{NS}/web-0", s
    assert s.get("reservedPodUid") == uid and s.get("state") == "Assigned", s
    assert s.get("subnetId") == POD_SUBNET and s.get("zone") == "ap-guangzhou-3", s
    eni = s.get("eniId")
    enis = w._cloud_enis().values()
    assert eni and any(e.eni_id == eni and e.instance_id == NODES["n1"] for e in enis)
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Bound" and c["status"]["podUid"] == uid
    moved = [e for e in events(w, "IPMoved") if e["involvedObject"]["name"] == "web-0"]
    assert moved and moved[-1]["message"] == f"static IP {ip} moved to n1 ({eni}) for pod uid {uid}"
    assert _histogram_count("move") == moved_before + 1
    w.settle()
    assert w.pods["web-0"].ip == ip


def test_a_move_from_a_gone_node_does_not_wait(world: IpamModel) -> None:
    w = world
    ip, _ = _move_web0(w, "n1")
    w.user.delete("/api/v1/nodes/n2")
    tick(w, 2)
    assert cloud_holder(w, ip) == NODES["n1"]
    assert spec(w, ip).get("nodeName") == "n1"


def test_an_address_recorded_as_someone_elses_is_never_moved(world: IpamModel) -> None:
    w = world
    ip, _ = _move_web0(w, "n1")
    conflicts = _conflicts("record")
    w.user.patch(paths.vpc_ip(ip), {"spec": {"claim": f"{NS}/web-9"}})
    tick(w, 2)
    w._agent_pass("n2")
    tick(w, 2)
    assert cloud_holder(w, ip) == NODES["n2"], "another claim's address was moved"
    assert spec(w, ip).get("claim") == f"{NS}/web-9"
    refused = [e for e in events(w, "StaticIPConflict") if e["involvedObject"]["name"] == "web-0"]
    assert refused and refused[0]["type"] == "Warning"
    assert f"recorded as claim {NS}/web-9 on node n2" in refused[0]["message"]
    assert _conflicts("record") > conflicts
    s = spec(w, ip)
    assert s.get("state") != "Releasing" or not s.get("releaseId"), s


def _conflicts(kind: str) -> float:
    v = metrics.REGISTRY.get_sample_value("tke_ipamd_claim_conflicts_total", {"kind": kind})
    return v or 0.0


def test_a_waiting_move_rewrites_nothing_and_follows_the_pod_to_a_third_node(
    world: IpamModel,
) -> None:
    w = world
    ip, _ = _move_web0(w, "n1")
    tick(w)
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["nodeName"] == "n1"
    rv = c["metadata"]["resourceVersion"]
    tick(w, 2)  # waiting for the grant: the intent is written once
    c = claim_obj(w, "web-0")
    assert c is not None and c["metadata"]["resourceVersion"] == rv
    w._delete(w.pods["web-0"])
    w._create("web-0", "n3", "sts")  # the pod moves on before the move is done
    tick(w)
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Migrating" and c["status"]["nodeName"] == "n3"
    w._agent_pass("n2")
    tick(w)
    assert cloud_holder(w, ip) == NODES["n3"]


def test_a_move_reopens_a_request_left_without_an_id(world: IpamModel) -> None:
    w = world
    ip, _ = _move_web0(w, "n1")
    w.user.patch(paths.vpc_ip(ip), {"spec": {"state": "Releasing"}})  # an older ipamd's
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Releasing" and s.get("releaseId"), s
    w._agent_pass("n2")
    tick(w)
    assert cloud_holder(w, ip) == NODES["n1"]


def test_an_address_a_foreign_eni_holds_is_never_taken(world: IpamModel) -> None:
    w = world
    ip, _ = _move_web0(w, "n1")
    tick(w)
    w._agent_pass("n2")  # granted, but before ipamd moves it someone else takes it
    src = spec(w, ip)["eniId"]
    other, _ = make_cloud(w.emu, cluster_id="")
    foreign = other.create_eni(vpc_id=VPC, subnet_id=POD_SUBNET, name="someone-else")
    other.unassign_ips(src, [ip])
    other.assign_ips(foreign.eni_id, addresses=[ip])
    conflicts = _conflicts("foreign-eni")
    tick(w, 2)
    holder = [e.eni_id for e in w._cloud_enis().values() if any(a.address == ip for a in e.ips)]
    assert holder == [foreign.eni_id], "a foreign ENI's address was taken"
    assert _conflicts("foreign-eni") > conflicts
    refused = [e for e in events(w, "StaticIPConflict") if e["involvedObject"]["name"] == "web-0"]
    assert refused and f"held by ENI {foreign.eni_id}" in refused[-1]["message"]


def test_a_move_cut_between_its_record_writes_ends_with_the_claims_record(
    world: IpamModel,
) -> None:
    """ipamd dies after deleting the old record and before writing the new
    one: the next ipamd finds the address in the cloud and records it as the
    claim's, on the node it moved to."""
    w = world
    ip, uid = _move_web0(w, "n1")
    tick(w)
    w._agent_pass("n2")
    w._live_ipamd().kube.faults = KubeFaultPlan(0, "crash-after", f"/vpcips/{ip}")
    w._ipamd_step(w._live_ipamd().tick)
    assert w.ipamd is None, "the injected death did not happen"
    assert vpcip(w, ip) is None and cloud_holder(w, ip) == NODES["n1"]
    tick(w, 2)  # a new ipamd
    s = spec(w, ip)
    assert s.get("claim") == f"{NS}/web-0" and s.get("nodeName") == "n1", s
    assert s.get("reservedPodUid") == uid
    c = claim_obj(w, "web-0")
    assert c is not None and c["status"]["phase"] == "Bound" and c["status"]["nodeName"] == "n1"
    w.settle()
    assert w.pods["web-0"].ip == ip


def test_a_moving_claims_lost_record_is_found_in_the_cloud(world: IpamModel) -> None:
    """``kubectl delete vip`` of the claimed address in the middle of a move:
    the claim finds the address on our ENI of the old node and records it as
    its own again there, then the move goes on through the handshake."""
    w = world
    ip, uid = _move_web0(w, "n1")
    tick(w)
    w.user.delete(paths.vpc_ip(ip))
    tick(w)
    s = spec(w, ip)
    assert s.get("claim") == f"{NS}/web-0" and s.get("nodeName") == "n2", s
    assert cloud_holder(w, ip) == NODES["n2"]
    for _ in range(3):
        w._agent_pass("n2")
        tick(w)
    assert cloud_holder(w, ip) == NODES["n1"]
    s = spec(w, ip)
    assert s.get("claim") == f"{NS}/web-0" and s.get("nodeName") == "n1", s
    assert s.get("reservedPodUid") == uid


def test_a_moving_claims_address_found_nowhere_is_assigned_on_the_pods_node(
    world: IpamModel,
) -> None:
    """A move cut between unassign and assign (the fallback when a migrate is
    refused) left the address on no ENI and without a record: it is assigned
    on the pod's new node and recorded as the claim's there."""
    w = world
    ip, uid = _move_web0(w, "n1")
    src = spec(w, ip)["eniId"]
    other, _ = make_cloud(w.emu, cluster_id="")
    other.unassign_ips(src, [ip])
    w.user.delete(paths.vpc_ip(ip))
    tick(w)
    assert cloud_holder(w, ip) == NODES["n1"]
    s = spec(w, ip)
    assert s.get("claim") == f"{NS}/web-0" and s.get("nodeName") == "n1", s
    assert s.get("reservedPodUid") == uid and s.get("subnetId") == POD_SUBNET, s
