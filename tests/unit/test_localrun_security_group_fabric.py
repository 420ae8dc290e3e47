"""localrun.sgfabric: the emulator's security groups rendered into the fabric's
nftables table (pure), and the rendering accepted by the real nft (checked with
``nft -c`` in a throw-away network namespace: nothing is applied)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from localrun.sgfabric import render, rule_line


def _rule(protocol: str, port: str, cidr: str, action: str) -> dict[str, str]:
    return {"protocol": protocol, "port": port, "cidr": cidr, "action": action}


STATE: dict[str, Any] = {
    "security_groups": [
        {"sg_id": "sg-deny0080", "ingress": [
            _rule("TCP", "80", "10.0.48.0/20", "DROP"),
            _rule("ALL", "ALL", "0.0.0.0/0", "ACCEPT"),
        ]},
        {"sg_id": "sg-node0001", "ingress": [
            _rule("ALL", "ALL", "0.0.0.0/0", "ACCEPT"),
        ]},
        {"sg_id": "sg-mixed001", "ingress": [
            _rule("UDP", "53,5353", "10.0.0.0/16", "ACCEPT"),
            _rule("TCP", "8000-8080", "10.0.3.7/32", "ACCEPT"),
            _rule("ICMP", "ALL", "0.0.0.0/0", "DROP"),
            _rule("TCP", "ALL", "10.1.0.0/16", "DROP"),
        ]},
    ],
    "enis": [
        {"eni_id": "eni-aaaaaaaa", "security_groups": ["sg-deny0080", "sg-node0001"]},
        {"eni_id": "eni-bbbbbbbb", "security_groups": []},
        {"eni_id": "eni-cccccccc", "security_groups": ["sg-mixed001"]},
        {"eni_id": "eni-dddddddd", "security_groups": ["sg-node0001"]},
    ],
}


def test_rule_lines() -> None:
    assert rule_line(_rule("TCP", "80", "10.0.48.0/20", "DROP")) == (
        "ip saddr 10.0.48.0/20 tcp dport 80 drop"
    )
    assert rule_line(_rule("ALL", "ALL", "0.0.0.0/0", "ACCEPT")) == "accept"
    assert rule_line(_rule("UDP", "53,5353", "10.0.0.0/16", "ACCEPT")) == (
        "ip saddr 10.0.0.0/16 udp dport { 53, 5353 } accept"
    )
    assert rule_line(_rule("TCP", "ALL", "10.1.0.0/16", "DROP")) == (
        "ip saddr 10.1.0.0/16 meta l4proto tcp drop"
    )
    assert rule_line(_rule("ICMP", "ALL", "0.0.0.0/0", "DROP")) == "meta l4proto icmp drop"
    with pytest.raises(ValueError, match="GRE"):
        rule_line(_rule("GRE", "ALL", "0.0.0.0/0", "DROP"))


def test_groups_in_order_rules_in_order_then_drop_and_no_group_allows_all() -> None:
    script = render(STATE, ["eni-aaaaaaaa", "eni-bbbbbbbb", "eni-dddddddd"])
    # atomic whole-table replace
    assert script.startswith("table inet tke_sg {}\ndelete table inet tke_sg\ntable inet tke_sg {")
    chain_a = script.split("chain eni_aaaaaaaa {")[1].split("}")[0]
    lines = [ln.strip() for ln in chain_a.strip().splitlines() if not ln.strip().startswith("#")]
    assert lines == [
        "ip saddr 10.0.48.0/20 tcp dport 80 drop  # sg-deny0080",  # first group first
        "accept  # sg-deny0080",
        "accept  # sg-node0001",
        "drop",
    ]
    assert "eni_bbbbbbbb" not in script  # no group: nothing filters it
    assert "eni_cccccccc" not in script  # not plugged here
    forward = script.split("chain forward {")[1]
    assert forward.index("ct state established,related accept") < forward.index("oifname vmap")
    assert '"eni-aaaaaaaa" : jump eni_aaaaaaaa' in forward
    assert "policy accept" in forward


def test_nothing_to_filter_renders_an_empty_forward_chain() -> None:
    script = render(STATE, ["eni-bbbbbbbb"])
    assert "vmap" not in script and "chain forward" in script
    assert render({}, []) == render({"enis": []}, ["eni-gone0000"])


def test_nft_accepts_the_rendering() -> None:
    nft, unshare = shutil.which("nft"), shutil.which("unshare")
    assert nft and unshare, "nft and unshare are needed (apt-get install nftables util-linux)"
    script = render(STATE, ["eni-aaaaaaaa", "eni-bbbbbbbb", "eni-cccccccc", "eni-dddddddd"])
    r = subprocess.run(
        [unshare, "--net", nft, "-c", "-f", "-"],
        input=script, capture_output=True, text=True, timeout=30, check=False,
    )
    assert r.returncode == 0, f"nft -c refused:\n{r.stderr}\n{script}"
