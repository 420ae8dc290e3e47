"""The ENI plumber against real network namespaces: an ENI attached (in a state dump
shaped like the emulator's) to a real node's instance appears as a link with its MAC in
the node's netns, wired to the fabric with a route per IP; IPs that move between ENIs move
their routes; a detach removes the link. A packet crosses: the node netns reaches the
fabric's gateway through the ENI link."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from localnode import netns
from localnode.netns import ip
from localnode.proc import run
from localrun.plumber import Plumber


def eni(eni_id: str, mac: str, index: int, ips: list[str], instance: str | None = "ins-a"
        ) -> dict[str, Any]:
    return {"eni_id": eni_id, "primary": False, "instance_id": instance, "device_index": index,
            "mac": mac, "subnet_id": "subnet-p", "tags": {},
            "ips": [{"address": a, "primary": i == 0} for i, a in enumerate(ips)]}


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str]]:
    tag = secrets.token_hex(2)
    fabric, node_a, node_b = f"lrp-f-{tag}", f"lrp-a-{tag}", f"lrp-b-{tag}"
    for n in (fabric, node_a, node_b):
        netns.create(n)
    try:
        yield fabric, node_a, node_b
    finally:
        for n in (node_a, node_b, fabric):
            netns.delete(n)


def links(ns: str) -> dict[str, str]:
    return {lk["ifname"]: lk.get("address", "") for lk in json.loads(ip(ns, "-j", "link"))}


def routes(ns: str) -> dict[str, str]:
    return {r["dst"]: r["dev"] for r in json.loads(ip(ns, "-j", "route", "show"))
            if r["dst"].count(".") == 3 and "/" not in r["dst"]}


def test_plumber_follows_attach_ip_moves_and_detach(namespaces: tuple[str, str, str]) -> None:
    fabric, node_a, node_b = namespaces
    state: dict[str, Any] = {
        "subnets": [{"subnet_id": "subnet-p", "cidr": "10.9.0.0/24", "zone": "z"}],
        "enis": [eni("eni-aaaa0001", "20:90:6F:0A:00:01", 1, ["10.9.0.2", "10.9.0.3"]),
                 eni("eni-bbbb0001", "20:90:6F:0B:00:01", 1, ["10.9.0.7"], "ins-b")]}
    plumber = Plumber(fabric, lambda: copy.deepcopy(state),
                      nodes={"ins-a": node_a, "ins-b": node_b})
    plumber.start()
    try:
        plumber.reconcile_once()
        assert links(node_a).get("eth1") == "20:90:6f:0a:00:01"
        assert links(node_b).get("eth1") == "20:90:6f:0b:00:01"
        assert routes(fabric) == {"10.9.0.2": "eni-aaaa0001", "10.9.0.3": "eni-aaaa0001",
                                  "10.9.0.7": "eni-bbbb0001"}
        # the node side reaches the VPC gateway through its ENI (what the agent relies on)
        ip(node_a, "link", "set", "eth1", "up")
        ip(node_a, "addr", "add", "10.9.0.2/32", "dev", "eth1")
        ip(node_a, "route", "add", "10.9.0.1", "dev", "eth1", "scope", "link")
        run(["ping", "-c", "1", "-W", "2", "10.9.0.1"], netns=node_a)

        # 10.9.0.3 migrates to node b's ENI
        state["enis"][0]["ips"].pop()
        state["enis"][1]["ips"].append({"address": "10.9.0.3", "primary": False})
        plumber.reconcile_once()
        assert routes(fabric)["10.9.0.3"] == "eni-bbbb0001"

        # detach node a's ENI: its link goes
        state["enis"][0]["instance_id"] = None
        state["enis"][0]["device_index"] = None
        plumber.reconcile_once()
        assert "eth1" not in links(node_a) and "eni-aaaa0001" not in links(fabric)
        assert plumber.stats.links_added == 2 and plumber.stats.links_removed == 1
    finally:
        plumber.stop()
