"""ipamd's release handshake for dynamic IPs (``NodeController.request_release``
and ``finish_releases``), step by step on the model world (tests/mut_world.py):
the mutation run (docs/mutation.md) found these rules unguarded in the
random model's short setting.

* a warm-pool trim asks the surplus back with a request id and leaves it
  alone until the agent grants that very request; then it is unassigned in
  the cloud and its record deleted, while the node keeps its warm IPs;
* a request left open without an id (an older ipamd made it) is re-opened
  with one, or no answer could ever count;
* the IPs of a node that is gone are released without asking."""

from __future__ import annotations

from ipamd.kube import paths
from tests.mut_world import (
    NODES,
    IpamModel,
    cloud_holder,
    node_ips,
    spec,
    tick,
    world,
)

__all__ = ["world"]  # the fixture


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
