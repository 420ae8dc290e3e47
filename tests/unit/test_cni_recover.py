"""The pure part of the rebuild from live links: which IP a host veth
serves (its one /32 route, else the IP whose derived MAC is the link's),
and what ADD is told while links are unexplained."""

from __future__ import annotations

from cni.agent.dataplane.podnet import veth_mac
from cni.agent.recover import Recovery, explain_ip

NAME = "tke0123456789ab"
NODE_IPS = ["10.0.0.10", "10.0.0.11", "10.0.0.12"]


def test_route_names_the_ip() -> None:
    routes = {("10.0.0.11", 7), ("10.0.0.12", 8)}
    assert explain_ip(NAME, 7, "02:aa:aa:aa:aa:aa", routes, NODE_IPS) == "10.0.0.11"


def test_without_a_route_the_mac_names_the_ip() -> None:
    mac = veth_mac(NAME, "10.0.0.12", "host")
    assert explain_ip(NAME, 7, mac, set(), NODE_IPS) == "10.0.0.12"
    assert explain_ip(NAME, 7, "02:aa:aa:aa:aa:aa", set(), NODE_IPS) is None  # nothing says


def test_two_routes_need_the_mac_to_choose() -> None:
    routes = {("10.0.0.10", 7), ("10.0.0.11", 7)}
    assert explain_ip(NAME, 7, veth_mac(NAME, "10.0.0.11", "host"), routes, NODE_IPS) == (
        "10.0.0.11"
    )
    assert explain_ip(NAME, 7, "02:aa:aa:aa:aa:aa", routes, NODE_IPS) is None


def test_recovery_blocks_add_until_every_link_is_explained() -> None:
    r = Recovery()
    assert r.blocking() == ""
    r.begin("the checkpoint was unreadable")
    assert "rebuilding" in r.blocking()
    assert not r.settle({"tkeaaaaaaaaaaaa": "no host route"})
    msg = r.blocking()
    assert "tkeaaaaaaaaaaaa" in msg and "not accounted for" in msg and "given twice" in msg
    assert r.settle({})  # ended now
    assert r.blocking() == "" and not r.active


def test_cooldown_end_from_either_status_form() -> None:
    from cni.agent.recover import cooldown_end

    now = 1_800_000_000.0
    assert cooldown_end({"phase": "Cooldown", "cooldownUntil": now + 60}, now) == now + 60
    rfc = "2027-01-15T08:00:00Z"  # = 1_800_000_000
    assert cooldown_end({"phase": "Cooldown", "cooldownUntil": rfc}, now - 1) == now
    assert cooldown_end({"phase": "Cooldown", "cooldownUntil": now - 1}, now) is None  # over
    assert cooldown_end({"phase": "InUse", "cooldownUntil": now + 60}, now) is None
    assert cooldown_end({"phase": "Cooldown", "cooldownUntil": "yesterday"}, now) is None
