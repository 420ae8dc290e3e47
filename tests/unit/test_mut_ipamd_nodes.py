"""ipamd's release handshake for dynamic IPs (``NodeController.request_release``
and ``finish_releases``), step by step on the model world (tests/mut_world.py):
the mutation run (docs/mutation.md) found these rules unguarded in the
random model's short setting.

* a warm-pool trim asks the surplus back with a request id and leaves it
  alone until the agent grants that very request; then it is unassigned in
  the cloud and its record deleted, while the node keeps its warm IPs;
* a request left open without an id (an older ipamd made it) is re-opened
  with one, or no answer could ever count;
* the IPs of a node that is gone are released without asking;
* a subnet taken out of the ConfigMap is drained: its free dynamic IPs are
  asked back (not the used ones, not a claim's), and an ENI left empty is
  deleted, while nodes get ENIs in the new subnet;
* free IPs in an active subnet the cloud says is full are kept, not drained;
  a draining subnet is drained also when the cloud said it is full;
* an address marked as a pod's own (its claim was deleted while it ran) is
  never drained nor asked back while the pod exists, also without a sandbox;
  a request left open on it is taken back; when the node is gone it goes;
* the node condition says whether the node's zone has a subnet."""

from __future__ import annotations

from typing import Any

import pytest

from core import names
from ipamd.kube import paths
from ipamd.state import NODE
from tests.model_fakes import FakeKube
from tests.model_world import POD_SUBNET
from tests.mut_world import (
    NODES,
    NS,
    POD2_SUBNET,
    ZONE4,
    ZONE4_INSTANCE,
    IpamModel,
    add_node,
    claim_obj,
    cloud_enis_in,
    cloud_holder,
    events,
    node_ips,
    set_subnet,
    skips_first,
    spec,
    tick,
    unguarded,
    vpcip,
    wide_world,
    world,
)

__all__ = ["wide_world", "world"]  # the fixtures


def _free_surplus(w: IpamModel, node: str) -> set[str]:
    """Two dynamic pods more on ``node``, settled, then deleted: their IPs are free."""
    for name in ("dyn-x", "dyn-y"):
        w._create(name, node, "dynamic")
    w.settle()
    freed = {w.pods["dyn-x"].ip, w.pods["dyn-y"].ip}
    for name in ("dyn-x", "dyn-y"):
        w._delete(w.pods[name])
    for n in NODES:
        w._agent_pass(n)  # the agent reports them free
    return freed


def _releasing(w: IpamModel, node: str) -> dict[str, str]:
    return {
        ip: (o["spec"].get("releaseId") or "")
        for ip, o in node_ips(w, node).items()
        if o["spec"].get("state") == "Releasing"
    }


def test_trim_waits_for_the_agents_grant_of_its_own_request(world: IpamModel) -> None:
    w = world
    _free_surplus(w, "n2")  # n2 also holds web-0's claimed IP
    skips_first(w)
    before = set(node_ips(w, "n2"))
    tick(w)
    asked = _releasing(w, "n2")
    assert asked, "no surplus asked back"
    assert all(asked.values()), f"a request without an id: {asked}"
    claimed = {ip for ip, o in node_ips(w, "n2").items() if o["spec"].get("claim")}
    assert claimed and not claimed & set(asked)
    tick(w, 2)  # no answer yet: nothing leaves, the ids stay
    assert _releasing(w, "n2") == asked
    assert all(cloud_holder(w, ip) == NODES["n2"] for ip in asked)
    w._agent_pass("n2")  # the agent grants
    tick(w)
    for ip in asked:
        assert cloud_holder(w, ip) is None, f"granted {ip} still assigned"
        assert ip not in node_ips(w, "n2"), f"granted {ip} still recorded"
    left = set(node_ips(w, "n2"))
    assert claimed <= left and left == before - set(asked)
    w.settle()


def test_a_request_without_an_id_is_reopened_with_one(world: IpamModel) -> None:
    w = world
    freed = _free_surplus(w, "n1")
    legacy = sorted(freed)[0]
    w.user.patch(paths.vpc_ip(legacy), {"spec": {"state": "Releasing"}})
    assert spec(w, legacy).get("state") == "Releasing" and not spec(w, legacy).get("releaseId")
    tick(w)
    s = spec(w, legacy)
    assert s.get("state") == "Releasing" and s.get("releaseId"), s
    w._agent_pass("n1")
    tick(w)
    assert cloud_holder(w, legacy) is None
    w.settle()


def test_a_gone_nodes_ips_are_released_without_asking(world: IpamModel) -> None:
    w = world
    held = set(node_ips(w, "n3"))
    assert held, "n3 has no warm pool"
    w.user.delete("/api/v1/nodes/n3")
    tick(w)
    for ip in held:
        assert cloud_holder(w, ip) is None, f"{ip} of the gone node is still assigned"
    assert not node_ips(w, "n3")


def test_a_subnet_taken_out_is_drained_and_its_empty_enis_deleted(wide_world: IpamModel) -> None:
    w = wide_world
    web0_ip = claim_obj(w, "web-0")["status"]["ip"]  # type: ignore[index]
    w._delete(w.pods["web-0"])  # its claim keeps the IP reserved (not used)
    tick(w)
    used = w.pods["dyn-a"].ip
    assert spec(w, used).get("state") == "Assigned"
    free = {
        ip
        for n in NODES
        for ip, o in node_ips(w, n).items()
        if o["spec"].get("subnetId") == POD_SUBNET and not o["spec"].get("claim") and ip != used
    }
    assert free, "no free warm IP in the old subnet"
    unguarded(w)
    skips_first(w)
    set_subnet(w, POD2_SUBNET)
    tick(w)
    for ip in free:
        assert spec(w, ip).get("state") == "Releasing", f"free {ip} of the old subnet kept"
    assert spec(w, used).get("state") == "Assigned", "the running pod's IP was asked back"
    assert spec(w, web0_ip).get("state") == "Assigned", "the claim's reserved IP was asked back"
    n3_old = cloud_enis_in(w, POD_SUBNET, NODES["n3"])
    assert n3_old, "n3 had no ENI in the old subnet"
    w.settle()
    assert cloud_enis_in(w, POD_SUBNET, NODES["n3"]) == [], "n3's emptied ENI was kept"
    assert cloud_enis_in(w, POD2_SUBNET, NODES["n3"]), "n3 got no ENI in the new subnet"
    assert cloud_holder(w, used) == NODES["n1"]  # the used ENI stays with its pod
    assert cloud_holder(w, web0_ip) == NODES["n2"]  # and the claim's
    assert w.pods["dyn-a"].ip == used


def test_free_ips_of_a_full_active_subnet_are_kept(world: IpamModel) -> None:
    w = world
    ipamd = w._live_ipamd()
    before = {n: set(node_ips(w, n)) for n in NODES}
    ipamd.app.state.exhausted.add(POD_SUBNET)  # the cloud said the subnet is full
    for n in NODES:
        ipamd.app.queue.add(NODE + n)
    ipamd.drain()  # the node syncs, without the periodic refresh of the counts
    for n in NODES:
        assert set(node_ips(w, n)) == before[n]
        assert not [ip for ip, o in node_ips(w, n).items() if o["spec"].get("state") == "Releasing"]


def test_node_condition_says_whether_its_zone_has_a_subnet(
    wide_world: IpamModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = wide_world
    writes: list[tuple[str, dict[str, Any]]] = []

    def record(self: FakeKube, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        writes.append((path, body))
        return {}

    monkeypatch.setattr(FakeKube, "patch_strategic", record)  # conditions: not in the store
    add_node(w, "n4", ZONE4, ZONE4_INSTANCE)
    w.ipamd = None
    w._live_ipamd()  # a fresh ipamd writes every node's condition once

    def cond(node: str) -> dict[str, Any]:
        got = [b for p, b in writes if p == f"/api/v1/nodes/{node}/status"]
        assert len(got) == 1, f"{node}: {got}"
        (c,) = got[0]["status"]["conditions"]
        assert c["type"] == "TKEENIReady"
        return dict(c)

    ok = cond("n1")
    assert (ok["status"], ok["reason"]) == ("True", "ENIReady")
    assert ok["message"] == "subnets for zone ap-guangzhou-3 are configured"
    bad = cond("n4")
    assert (bad["status"], bad["reason"]) == ("False", "NoSubnetInZone"), bad
    assert f"zone {ZONE4}" in bad["message"]
    warned = [e for e in events(w, "NoSubnetInZone") if e["involvedObject"]["name"] == "n4"]
    assert warned and warned[0]["type"] == "Warning"
    assert cloud_enis_in(w, POD_SUBNET, ZONE4_INSTANCE) == []  # no ENI for it


def _unclaim_web0(w: IpamModel) -> tuple[str, str]:
    """``kubectl delete vipc`` of the running web-0: its IP becomes its own."""
    c = claim_obj(w, "web-0")
    assert c is not None
    ip, uid = c["status"]["ip"], w.pods["web-0"].uid
    w.user.delete(paths.claim(NS, "web-0"))
    tick(w)
    assert spec(w, ip).get("unclaimedPodUid") == uid
    return ip, uid


def test_a_request_left_open_on_a_pods_own_ip_is_taken_back(world: IpamModel) -> None:
    w = world
    ip, _ = _unclaim_web0(w)
    skips_first(w)
    w.user.patch(paths.vpc_ip(ip), {"spec": {"state": "Releasing", "releaseId": "old-1"}})
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Assigned" and not s.get("releaseId"), s
    w._agent_pass("n2")
    tick(w)
    assert cloud_holder(w, ip) == NODES["n2"]


def test_a_gone_nodes_ip_goes_even_when_marked_as_a_pods_own(world: IpamModel) -> None:
    w = world
    ip, _ = _unclaim_web0(w)
    w.user.delete("/api/v1/nodes/n2")
    tick(w)
    assert cloud_holder(w, ip) is None


def test_drain_keeps_a_pods_own_ip_while_the_pod_has_no_sandbox(wide_world: IpamModel) -> None:
    w = wide_world
    ip, _ = _unclaim_web0(w)
    p = w.pods["web-0"]
    w._netns_gone(p)  # the sandbox died; the pod object stays
    p.container, p.ip = "", ""
    w._agent_pass("n2")  # the agent finds the link gone and reports the IP free
    assert (vpcip(w, ip) or {}).get("status", {}).get("phase") != "InUse"
    unguarded(w)
    skips_first(w)
    set_subnet(w, POD2_SUBNET)
    tick(w)
    s = spec(w, ip)
    assert s.get("state") == "Assigned" and not s.get("releaseId"), s
    others = [
        a
        for a, o in node_ips(w, "n2").items()
        if a != ip and o["spec"].get("subnetId") == POD_SUBNET and not o["spec"].get("claim")
    ]
    assert others and all(spec(w, a).get("state") == "Releasing" for a in others)


def test_a_draining_subnet_is_drained_also_when_full(wide_world: IpamModel) -> None:
    w = wide_world
    unguarded(w)
    ipamd = w._live_ipamd()
    app = ipamd.app
    set_subnet(w, POD2_SUBNET)
    ipamd.relist()
    app.state.configmap_data = app.configmaps.get(
        f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"
    )
    app.subnets.sync()  # the old subnet drains
    app.state.exhausted.add(POD_SUBNET)  # and the cloud said it is full
    skips_first(w)
    for n in NODES:
        app.queue.add(NODE + n)
    ipamd.drain()
    free = [
        a
        for a, o in node_ips(w, "n3").items()
        if o["spec"].get("subnetId") == POD_SUBNET and not o["spec"].get("claim")
    ]
    assert free and all(spec(w, a).get("state") == "Releasing" for a in free)
