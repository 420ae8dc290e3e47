"""The stand-alone shim: env validation, the wire request, its import graph."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cni.agent import install
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


def _fake_agent(path: str) -> threading.Thread:
    """Answers one request per connection with exit 0 and an empty body."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)

    def serve() -> None:
        with server:
            while True:
                conn, _ = server.accept()
                with conn:
                    while conn.recv(65536):
                        pass
                    conn.sendall(b'{"v":1,"exit":0}\n')
                    if path.endswith("last.sock"):
                        return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("command", ["STATUS", "ADD", "DEL"])
def test_installed_config_costs_no_json_import(tmp_path: Path, command: str) -> None:
    """The conflist the agent installs names ``agentSocket``, so the runtime
    passes it on every call: finding it must not import the ``json`` package
    (``re``, ``enum``, ...: ~8 ms, as long as the interpreter start-up)."""
    sock = str(tmp_path / "last.sock")
    agent = _fake_agent(sock)
    exe = install.install_plugin(str(tmp_path / "bin"), sys.executable, "/nonexistent.sock")
    conflist = install.build_conflist(
        "tke-route-eni",
        cni_version="1.1.0",
        socket_path=sock,
        chain=install.DEFAULT_CHAIN,
        delegates=[],
        host_veth_prefix="tke",
    )
    netconf = {"cniVersion": "1.1.0", "name": conflist["name"], **conflist["plugins"][0]}
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/x",
        "CNI_IFNAME": "eth0",
    }
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", exe],
        input=json.dumps(netconf).encode(),
        env=env,
        capture_output=True,
        check=False,
    )
    agent.join(10)
    assert out.returncode == 0, out.stdout + out.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.decode().splitlines()
        if line.startswith("import time:") and "|" in line
    }
    imported.discard("imported package")
    startup = {"_io", "marshal", "posix", "_frozen_importlib_external", "time", "zipimport"}
    startup |= {"_codecs", "codecs", "encodings.aliases", "encodings", "encodings.utf_8"}
    startup |= {"_signal", "_abc", "abc", "io"}
    extra = sorted(imported - startup - {"tke_route_eni", "_socket", "_json"})
    assert not extra, f"with the installed netconf the shim imported {', '.join(extra)}"


@pytest.mark.parametrize(
    "text",
    [
        '{"cniVersion": "1.0.0", "agentSocket": "/run/a.sock", "x": [1, 2.5, null, true]}',
        '  \n{"a": {"agentSocket": "nested"}, "agentSocket": "/top"}\t ',
        '{"s": "\\u2603 \\" \\\\ \\n", "n": NaN, "i": -Infinity, "big": 123456789012345678901}',
        '{"a": 1} trailing',
        '{"a": 1}{"b": 2}',
        "[1, 2]",
        '"just a string"',
        "",
        "   ",
        "{not json",
        '{"a": "\x01 raw control char"}',
        "\ufeff{}",
        "[" * 100_000,
    ],
)
def test_netconf_reads_as_json_loads(text: str) -> None:
    try:
        want = json.loads(text)
    except (ValueError, RecursionError):
        want = None
    got = shim._netconf(text)
    if isinstance(want, dict):
        assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    else:
        assert got == {}


@pytest.mark.parametrize(
    ("failure", "text"),
    [
        (shim.CniError(4, "CNI_IFNAME is invalid: 'a b'", "1-15 chars"), '{"cniVersion":"0.4.0"}'),
        (shim.CniError(11, 'agent "down" \u2603 \\ \n'), "not json"),
    ],
)
def test_error_and_version_answers_are_the_json_they_were(
    failure: shim.CniError, text: str, capfd: pytest.CaptureFixture[str]
) -> None:
    assert shim.emit_error(failure, text) == 1
    body = {"cniVersion": shim._version_of(text), "code": failure.code, "msg": failure.msg}
    if failure.details:
        body["details"] = failure.details
    assert capfd.readouterr().out == json.dumps(body) + "\n"
    assert shim.emit_version(text) == 0
    answer = {
        "cniVersion": shim._version_of(text),
        "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"],
    }
    assert capfd.readouterr().out == json.dumps(answer) + "\n"
