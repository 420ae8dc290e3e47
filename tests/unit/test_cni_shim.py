"""The stand-alone shim: env validation, the wire request, its import graph."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cni.agent.cnitypes import decode_wire_request
from cni.plugin import tke_route_eni as shim

OK = {"CNI_CONTAINERID": "abc_1.2-3", "CNI_NETNS": "/proc/1/ns/net", "CNI_IFNAME": "eth0"}


@pytest.mark.parametrize(
    ("command", "env", "named"),
    [
        ("ADD", {**OK, "CNI_CONTAINERID": ""}, "CNI_CONTAINERID"),
        ("ADD", {**OK, "CNI_CONTAINERID": "_x"}, "CNI_CONTAINERID"),
        ("ADD", {**OK, "CNI_CONTAINERID": "a b"}, "CNI_CONTAINERID"),
        ("CHECK", {k: v for k, v in OK.items() if k != "CNI_NETNS"}, "CNI_NETNS"),
        ("ADD", {**OK, "CNI_NETNS": "x"}, "CNI_NETNS"),
        ("DEL", {**OK, "CNI_IFNAME": "x" * 16}, "CNI_IFNAME"),
        ("DEL", {**OK, "CNI_IFNAME": ".."}, "CNI_IFNAME"),
        ("ADD", {**OK, "CNI_ARGS": "A=1;B"}, "CNI_ARGS"),
        ("GC", {}, "CNI_PATH"),
    ],
)
def test_env_invalid(command: str, env: dict[str, str], named: str) -> None:
    with pytest.raises(shim.CniError) as info:
        shim.check_env(env, command)
    assert info.value.code == 4 and named in info.value.msg


def test_env_valid() -> None:
    shim.check_env(OK, "ADD")
    shim.check_env({"CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"}, "DEL")  # netns optional on DEL
    shim.check_env({}, "STATUS")
    shim.check_env({}, "VERSION")


def test_request_roundtrip() -> None:
    env = {**OK, "CNI_COMMAND": "ADD", "PATH": "/bin", "CNI_ARGS": 'K8S_POD_NAME="quoted"\\'}
    text = json.dumps({"cniVersion": "1.0.0", "name": "ñ", "x": "\u2603\n"})
    got_env, got_stdin = decode_wire_request(shim.build_request(env, text))
    assert got_stdin == text
    assert got_env == {k: v for k, v in env.items() if k.startswith("CNI_")}  # only CNI_* forwarded


def test_shim_imports_only_what_a_forwarder_needs() -> None:
    code = (
        "import sys; before = set(sys.modules); "
        f"sys.path.insert(0, {str(shim.__file__).rsplit('/', 1)[0]!r}); import tke_route_eni; "
        "print(sorted(set(sys.modules) - before))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code], capture_output=True, text=True, check=True
    )
    assert set(json.loads(out.stdout.replace("'", '"'))) <= {"tke_route_eni", "_socket", "_json"}, (
        out.stdout
    )
