"""The agent's unix socket under slow, stuck and excess clients: a client
that connects and sends nothing (or trickles) is cut off after the read
timeout, and past the connection cap a new connection gets a clear CNI
error (code 11, "try again") at once instead of a thread, which the shim
prints like any other CNI error. The real server, real unix sockets, the
shim's own client code."""

from __future__ import annotations

import json
import socket
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from cni.agent.agent import Agent, AgentSettings
from cni.agent.ipsource import MemoryNodeIpSource
from cni.agent.pool import PoolState
from cni.agent.server import CniSocketServer
from cni.plugin.tke_route_eni import build_request, call_agent

VERSION_ENV = {"CNI_COMMAND": "VERSION"}
CONF = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CniSocketServer]:
    agent = Agent(
        AgentSettings(),
        source=MemoryNodeIpSource(),
        pods=None,
        netops=types.SimpleNamespace(),  # type: ignore[arg-type]  # VERSION needs no netlink
        state=PoolState(),
        checkpoint_path=str(tmp_path / "state" / "checkpoint.json"),
    )
    srv = CniSocketServer(str(tmp_path / "cni.sock"), agent)
    srv.read_timeout = 0.5
    srv.max_connections = 2
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def version(path: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code, body = call_agent(path, build_request(VERSION_ENV, CONF))
    return code, json.loads(body)


def stuck_client(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)  # only ends a hung test
    s.connect(path)
    return s


def test_stuck_client_is_cut_off_and_does_not_block(server: CniSocketServer) -> None:
    server.max_connections = 8  # the cap is the next test's
    stuck = stuck_client(server.path)
    trickle = stuck_client(server.path)
    trickle.sendall(b'{"v":1,')  # half a request, then nothing
    try:
        # the stuck ones hold no lock: a real request is served meanwhile
        code, body = version(server.path)
        assert code == 0 and "supportedVersions" in body, body
        for s in (stuck, trickle):
            try:
                data = s.recv(65536)  # the agent hangs up after its read timeout
            except TimeoutError:
                pytest.fail("the agent never cut off a client that sent nothing")
            header = data.partition(b"\n")[0]
            assert data == b"" or header.startswith(b'{"v":1,"exit":1}'), data
    finally:
        stuck.close()
        trickle.close()


def test_excess_connections_get_a_clear_cni_error(server: CniSocketServer) -> None:
    held = [stuck_client(server.path) for _ in range(2)]  # the cap
    try:
        # accepted in order: by the time this one is accepted both are being served
        code, body = call_agent(server.path, build_request(VERSION_ENV, CONF))
        answer = json.loads(body)
        assert code == 1, answer
        assert answer["code"] == 11 and "connections" in answer["msg"], answer
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 20  # only ends a hung test
    while True:
        code, answer = version(server.path)
        if code == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert code == 0, answer  # room again once the held connections are gone
