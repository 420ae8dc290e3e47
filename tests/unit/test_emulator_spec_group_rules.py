"""The emulator's start state (``vpcsim.spec``) with security-group rules
(``ingress`` / ``egress``, as the API writes them): kept in order and read back
by DescribeSecurityGroupPolicies (PolicyIndex from 0, Version 0), a group without
rules has none, and a bad rule stops the build naming the group, direction and
index. Called directly, without HTTP."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from vpcsim import security_groups as sgs
from vpcsim.context import Ctx
from vpcsim.faults import Faults
from vpcsim.spec import SpecError, build
from vpcsim.world import World

DENY_80 = {"Protocol": "TCP", "Port": "80", "CidrBlock": "10.0.48.0/20", "Action": "DROP"}
ALLOW_ALL = {"Protocol": "ALL", "CidrBlock": "0.0.0.0/0", "Action": "ACCEPT"}
ICMP = {"Protocol": "ICMP", "CidrBlock": "10.0.0.0/16", "Action": "ACCEPT"}


def policies(w: World, sg_id: str) -> dict[str, Any]:
    ctx = Ctx(w, "req-1", Faults(), random.Random(0), "DescribeSecurityGroupPolicies")
    got: dict[str, Any] = sgs.describe_policies(ctx, {"SecurityGroupId": sg_id})
    policy_set: dict[str, Any] = got["SecurityGroupPolicySet"]
    return policy_set


def test_rules_from_the_spec_in_order() -> None:
    w = build(
        {
            "security_groups": [
                {
                    "id": "sg-web00001",
                    "name": "web",
                    "ingress": [DENY_80, ALLOW_ALL],
                    "egress": [ICMP],
                },
                {"id": "sg-bare0001", "name": "bare"},
            ]
        }
    )
    got = policies(w, "sg-web00001")
    assert got["Version"] == "0"
    assert [
        (r["PolicyIndex"], r["Protocol"], r["Port"], r["CidrBlock"], r["Action"])
        for r in got["Ingress"]
    ] == [(0, "TCP", "80", "10.0.48.0/20", "DROP"), (1, "ALL", "ALL", "0.0.0.0/0", "ACCEPT")]
    assert [(r["Protocol"], r["Action"]) for r in got["Egress"]] == [("ICMP", "ACCEPT")]
    bare = policies(w, "sg-bare0001")
    assert (bare["Ingress"], bare["Egress"]) == ([], [])


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({**DENY_80, "Action": "MAYBE"}, "sg-web00001.ingress[1]"),
        ({**DENY_80, "Protocol": "SCTP"}, "sg-web00001.ingress[1]"),
        ({**DENY_80, "Colour": "red"}, "sg-web00001.ingress[1]"),
    ],
)
def test_a_bad_rule_stops_the_build_naming_it(rule: dict[str, Any], where: str) -> None:
    spec = {"security_groups": [{"id": "sg-web00001", "ingress": [ALLOW_ALL, rule]}]}
    with pytest.raises(SpecError, match=re.escape(where)):
        build(spec)
