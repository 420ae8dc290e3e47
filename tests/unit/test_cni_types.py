"""CNI wire handling on the agent side: validation codes, results per version."""

from __future__ import annotations

import json

import pytest

from cni.agent.cnitypes import (
    CniError,
    PodAttachment,
    build_result,
    decode_wire_request,
    ips_of_result,
    parse_request,
)

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
}
CONF = {"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"}
ATT = PodAttachment(
    "10.0.0.5", "tkeabc", "02:00:00:00:00:01", "eth0", "02:00:00:00:00:02", "/run/netns/x", 1500
)


def code_of(env: dict[str, str], stdin: str) -> int:
    with pytest.raises(CniError) as info:
        parse_request(env, stdin)
    return info.value.code


@pytest.mark.parametrize(
    ("env", "stdin", "code"),
    [
        (ENV, "{", 6),
        (ENV, "[]", 6),
        (ENV, json.dumps({**CONF, "cniVersion": "0.2.0"}), 1),
        (ENV, json.dumps({"name": "n", "type": "t"}), 7),
        (ENV, json.dumps({**CONF, "name": ""}), 7),
        (ENV, json.dumps({**CONF, "type": None}), 7),
        ({**ENV, "CNI_COMMAND": "CHECK"}, json.dumps(CONF), 7),  # no prevResult
        ({**ENV, "CNI_COMMAND": "GC"}, json.dumps(CONF), 1),  # GC needs 1.1.0
        ({**ENV, "CNI_COMMAND": "STATUS"}, json.dumps({**CONF, "cniVersion": "0.4.0"}), 1),
        ({**ENV, "CNI_COMMAND": "NOPE"}, json.dumps(CONF), 4),
        ({k: v for k, v in ENV.items() if k != "CNI_NETNS"}, json.dumps(CONF), 4),
        ({**ENV, "CNI_ARGS": "A=1;broken"}, json.dumps(CONF), 4),
    ],
)
def test_parse_errors(env: dict[str, str], stdin: str, code: int) -> None:
    assert code_of(env, stdin) == code


def test_parse_ok() -> None:
    req = parse_request(
        {**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u"},
        json.dumps(CONF),
    )
    assert (req.pod_namespace, req.pod_name, req.pod_uid, req.cni_version) == (
        "ns",
        "p",
        "u",
        "1.0.0",
    )
    assert parse_request({"CNI_COMMAND": "VERSION"}, "").cni_version == "1.1.0"


def test_wire_request() -> None:
    env, stdin = decode_wire_request(b'{"v":1,"env":{"CNI_COMMAND":"ADD"},"stdin":"{}"}')
    assert env == {"CNI_COMMAND": "ADD"} and stdin == "{}"
    with pytest.raises(CniError) as info:
        decode_wire_request(b'{"v":2,"env":{},"stdin":""}')
    assert info.value.code == 1
    with pytest.raises(CniError) as info:
        decode_wire_request(b"garbage")
    assert info.value.code == 6


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_result_shapes(version: str) -> None:
    r = build_result(version, ATT)
    assert r["cniVersion"] == version
    assert r["interfaces"][1] == {
        "name": "eth0",
        "mac": ATT.pod_mac,
        "sandbox": ATT.netns,
        **({"mtu": 1500} if version == "1.1.0" else {}),
    }
    assert r["ips"] == [
        {
            "address": "10.0.0.5/32",
            "gateway": "169.254.1.1",
            "interface": 1,
            **({"version": "4"} if version == "0.4.0" else {}),
        }
    ]
    assert r["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]
    assert ips_of_result(r) == ["10.0.0.5"]


def test_result_merges_prev() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "x"}],
        "ips": [{"address": "fd00::1/64", "interface": 0}],
        "dns": {"nameservers": ["1.1.1.1"]},
    }
    r = build_result("1.0.0", ATT, prev)
    assert [i["name"] for i in r["interfaces"]] == ["x", "tkeabc", "eth0"]
    assert r["ips"][1]["interface"] == 2 and r["dns"] == {"nameservers": ["1.1.1.1"]}
    assert ips_of_result(r) == ["10.0.0.5"]
