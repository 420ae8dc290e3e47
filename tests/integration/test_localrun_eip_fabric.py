"""The local run's EIP fabric against real network namespaces: the internet namespace
beside a VPC fabric, a bound EIP (in a state dump shaped like the emulator's) DNATed to
a "pod" behind the fabric, which sees the internet client's own address; what the pod
sends to the internet leaves with its EIP as source; the binding gone, the EIP answers
no more; ``down`` leaves no namespace or table. Run as root, under the e2e lock."""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localnode import netns
from localnode.netns import ip
from localnode.proc import ns_argv, run
from localrun import eipfabric
from localrun.eipfabric import CLIENT_ADDRESS, EipFabric, render

POD_IP, PUBLIC = "10.9.0.5", "203.0.113.5"
CGI = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n'


def state(*pairs: tuple[str, str], status: str = "BIND") -> dict[str, Any]:
    return {
        "eips": {
            "addresses": [
                {"address_id": f"eip-{i:08d}", "address_ip": pub, "private_ip": priv,
                 "status": status}
                for i, (pub, priv) in enumerate(pairs)
            ]
        }
    }


def test_render_only_bound_eips() -> None:
    s = state((PUBLIC, POD_IP))
    s["eips"]["addresses"].append(
        {"address_id": "eip-x", "address_ip": "203.0.113.9", "private_ip": None,
         "status": "UNBIND"})
    text = render(s)
    assert f'iifname "inet0" ip daddr {PUBLIC} dnat to {POD_IP}' in text
    assert f'oifname "inet0" ip saddr {POD_IP} snat to {PUBLIC}' in text
    assert "203.0.113.9" not in text
    assert render({}).count("dnat to") == 0
    assert eipfabric.internet_netns("tkg-ab-fabric") == "tkg-ab-inet"


@pytest.fixture
def world() -> Iterator[tuple[str, str, Path]]:
    tag = secrets.token_hex(2)
    fabric, pod = f"lre-{tag}-fabric", f"lre-{tag}-pod"
    www = Path(tempfile.mkdtemp(prefix="lre-www-"))
    (www / "cgi-bin").mkdir()
    (www / "cgi-bin" / "ip").write_text(CGI)
    (www / "cgi-bin" / "ip").chmod(0o755)
    for n in (fabric, pod):
        netns.create(n)
    try:
        ip(fabric, "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", pod)
        ip(fabric, "addr", "add", "10.9.0.1/32", "dev", "pod0")
        ip(fabric, "link", "set", "pod0", "up")
        ip(fabric, "route", "add", f"{POD_IP}/32", "dev", "pod0")
        ip(pod, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        ip(pod, "link", "set", "eth0", "up")
        ip(pod, "route", "replace", "default", "via", "10.9.0.1", "dev", "eth0", "onlink")
        yield fabric, pod, www
    finally:
        EipFabric(fabric).down()
        for n in (pod, fabric):
            netns.delete(n)
        subprocess.run(["rm", "-rf", str(www)], check=False)


def httpd(ns: str, www: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(ns_argv(["busybox", "httpd", "-f", "-p", str(port), "-h", str(www)],
                                    netns=ns))


def curl(ns: str, url: str) -> str:
    r = subprocess.run(ns_argv(["curl", "-s", "--max-time", "3", url], netns=ns),
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"curl exit {r.returncode}"
    # busybox httpd names an IPv4 peer in its v4-mapped form: [::ffff:a.b.c.d]
    return r.stdout.strip().removeprefix("[::ffff:").removesuffix("]")


def test_eip_reachable_from_the_internet_with_the_clients_address(
    world: tuple[str, str, Path]
) -> None:
    fabric, pod, www = world
    fab = EipFabric(fabric)
    servers = [httpd(pod, www, 80)]
    try:
        assert fab.apply(state((PUBLIC, POD_IP)))
        assert not fab.apply(state((PUBLIC, POD_IP)))  # unchanged: nothing to do
        servers.append(httpd(fab.inet, www, 8080))
        got = ""
        for _ in range(20):  # the servers start
            got = curl(fab.inet, f"http://{PUBLIC}/cgi-bin/ip")
            if got == CLIENT_ADDRESS:
                break
            run(["sleep", "0.2"])
        assert got == CLIENT_ADDRESS  # DNAT to the pod, the client's address kept
        assert curl(pod, f"http://{CLIENT_ADDRESS}:8080/cgi-bin/ip") == PUBLIC  # SNAT out
        assert curl(fab.inet, f"http://{POD_IP}/cgi-bin/ip").startswith("curl exit")
        assert fab.apply(state())  # unbound: the EIP answers no more
        assert curl(fab.inet, f"http://{PUBLIC}/cgi-bin/ip").startswith("curl exit")
    finally:
        for s in servers:
            s.terminate()
            s.wait(5)
    fab.down()
    assert not netns.exists(fab.inet)
    assert "tke_eip" not in run(["nft", "list", "tables"], netns=fabric)
