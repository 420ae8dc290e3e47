"""The tke-eni-ip-webhook process (its console script) over real TLS sockets:
malformed AdmissionReviews get clear answers and the server keeps serving;
unusable certificate files stop the start with the reason (exit 2); a changed
certificate is served to new connections, a broken one is refused and the
previous one stays; SIGTERM stops it with exit 0."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.ports import free_ports
from tests.webhook_support import pod, review_body
from webhook import pki

EXE = str(Path(sys.executable).parent / "tke-eni-ip-webhook")
ENI_IP = "tke.cloud.tencent.com/eni-ip"


def write_bundle(d: Path, names: list[str] | None = None) -> pki.Bundle:
    b = pki.issue(names or ["localhost", "127.0.0.1"], validity=dt.timedelta(days=1),
                  ca_validity=dt.timedelta(days=2))
    for name, data in (("tls.crt", b.cert), ("tls.key", b.key), ("ca.crt", b.ca)):
        tmp = d / f".{name}"
        tmp.write_bytes(data)
        tmp.replace(d / name)  # as a Secret volume swaps files
    return b


class Server:
    def __init__(self, d: Path) -> None:
        self.dir = d
        self.port, self.health = free_ports(2)
        self.log = d / "webhook.log"
        self.proc = subprocess.Popen(
            [EXE, "--host", "127.0.0.1", "--port", str(self.port), "--health-port",
             str(self.health), "--tls-cert-file", str(d / "tls.crt"), "--tls-key-file",
             str(d / "tls.key"), "--eni-only", "--log-format", "text"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"webhook not listening: {self.log.read_text()}")

    def connect(self, ca: bytes) -> http.client.HTTPSConnection:
        ctx = ssl.create_default_context(cadata=ca.decode())
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)

    def post(self, ca: bytes, body: bytes, ctype: str = "application/json"
             ) -> tuple[int, dict[str, Any]]:
        conn = self.connect(ca)
        try:
            conn.request("POST", "/mutate", body, {"Content-Type": ctype})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def metric(self, name: str) -> float:
        conn = http.client.HTTPConnection("127.0.0.1", self.health, timeout=5)
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.split(" ")[0] == name:
                return float(line.split()[-1])
        return 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                return -9
        return int(self.proc.returncode)


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tls"
    d.mkdir()
    return d


@pytest.fixture
def server(tls_dir: Path) -> Iterator[Server]:
    write_bundle(tls_dir)
    s = Server(tls_dir)
    try:
        yield s
    finally:
        s.stop()


def test_malformed_reviews_over_tls_get_clear_answers_and_it_keeps_serving(
        server: Server, tls_dir: Path) -> None:
    ca = (tls_dir / "ca.crt").read_bytes()
    bad = json.loads(review_body(pod(), uid="u-42"))
    bad["request"]["object"] = "not a pod"
    cases = [
        (b"", 400, "empty request body"),
        (b"\x00\x01garbage", 400, "not JSON"),
        (b'{"kind": "AdmissionReview"}', 400, "apiVersion"),
        (json.dumps(bad).encode(), 200, "request.object: expected the CREATEd object"),
        (b"[" * 50000, 400, "not JSON"),
    ]
    for body, code, says in cases:
        got, out = server.post(ca, body)
        assert got == code, (body[:40], got, out)
        assert says in out["response"]["status"]["message"], out
    assert out is not None
    got, out = server.post(ca, json.dumps(bad).encode())
    assert out["response"]["uid"] == "u-42" and out["response"]["allowed"] is False
    got, out = server.post(ca, b"{}", "text/xml")
    assert got == 415
    # plain HTTP and a TLS client that gives up mid-handshake do not hurt the server
    with socket.create_connection(("127.0.0.1", server.port), 5) as s:
        s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        with contextlib.suppress(OSError):
            s.recv(100)
    with socket.create_connection(("127.0.0.1", server.port), 5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
    got, out = server.post(ca, review_body(pod(), uid="after"))
    assert got == 200 and out["response"]["patchType"] == "JSONPatch"
    assert server.metric('tke_eni_webhook_admissions_total{outcome="malformed"}') == 7  # + 415
    assert server.proc.poll() is None


def test_certificate_reload_and_a_broken_pair_keeps_the_previous_one(
        server: Server, tls_dir: Path) -> None:
    first_ca = (tls_dir / "ca.crt").read_bytes()
    assert server.post(first_ca, review_body(pod()))[0] == 200
    second = write_bundle(tls_dir)
    time.sleep(1.1)  # the files are checked at most once a second

    def serves(ca: bytes) -> bool:
        try:
            return server.post(ca, review_body(pod()))[0] == 200
        except ssl.SSLError:
            return False
    assert serves(second.ca) or serves(second.ca)  # the first connection may trigger it
    assert not serves(first_ca)
    assert server.metric('tke_eni_webhook_tls_reloads_total{result="ok"}') == 1
    # a key of another certificate: refused, the second certificate stays
    other = pki.issue(["x"], validity=dt.timedelta(days=1), ca_validity=dt.timedelta(days=2))
    (tls_dir / "tls.key").write_bytes(other.key)
    time.sleep(1.1)
    assert serves(second.ca)
    assert server.metric('tke_eni_webhook_tls_reloads_total{result="failed"}') == 1
    assert "tls reload failed" in server.log.read_text()
    assert server.stop() == 0
    assert "stopped" in server.log.read_text()


@pytest.mark.parametrize(("setup", "says"), [
    ("missing", "cannot read"),
    ("empty", "file is empty"),
    ("mismatch", "does not match the certificate"),
    ("garbage", "not a PEM certificate"),
])
def test_unusable_files_stop_the_start_with_the_reason(tls_dir: Path, setup: str,
                                                       says: str) -> None:
    write_bundle(tls_dir)
    if setup == "missing":
        os.unlink(tls_dir / "tls.key")
    elif setup == "empty":
        (tls_dir / "tls.crt").write_bytes(b"")
    elif setup == "mismatch":
        other = pki.issue(["x"], validity=dt.timedelta(days=1), ca_validity=dt.timedelta(days=2))
        (tls_dir / "tls.key").write_bytes(other.key)
    else:
        (tls_dir / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nxx\n")
    port, health = free_ports(2)
    proc = subprocess.run([EXE, "--port", str(port), "--health-port", str(health),
                           "--tls-cert-file", str(tls_dir / "tls.crt"),
                           "--tls-key-file", str(tls_dir / "tls.key"), "--log-format", "text"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "cannot serve TLS" in proc.stderr and says in proc.stderr, proc.stderr


def test_an_idle_connection_does_not_hold_up_the_apiservers_calls(tls_dir: Path) -> None:
    """A client that connects and sends nothing (or stops mid-handshake) must not keep
    the server from answering others: the API server gives a webhook timeoutSeconds (5)
    per call. Bounded: the idle client is allowed --read-timeout 30 s, the real call
    gets 10 s."""
    write_bundle(tls_dir)
    port, health = free_ports(2)
    proc = subprocess.Popen([EXE, "--host", "127.0.0.1", "--port", str(port), "--health-port",
                             str(health), "--tls-cert-file", str(tls_dir / "tls.crt"),
                             "--tls-key-file", str(tls_dir / "tls.key"), "--read-timeout", "30",
                             "--log-format", "text"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        ca = (tls_dir / "ca.crt").read_bytes()
        idle = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(3)]
        half = socket.create_connection(("127.0.0.1", port), 5)
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
        time.sleep(0.3)
        ctx = ssl.create_default_context(cadata=ca.decode())
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("POST", "/mutate", review_body(pod()), {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
        for s in [*idle, half]:
            s.close()
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_client_dribbling_its_request_head_does_not_keep_a_worker(tls_dir: Path) -> None:
    """With one worker: a client that completes the handshake, then sends its request
    head a byte at a time (each within --read-timeout 3 s) must be cut off once the
    head is not complete 3 s after the worker took it, so the API server's call is
    answered (bounded: the real call gets 15 s; the dribbler would go on for 40 s)."""
    import threading

    write_bundle(tls_dir)
    port, health = free_ports(2)
    proc = subprocess.Popen([EXE, "--host", "127.0.0.1", "--port", str(port), "--health-port",
                             str(health), "--tls-cert-file", str(tls_dir / "tls.crt"),
                             "--tls-key-file", str(tls_dir / "tls.key"), "--read-timeout", "3",
                             "--threads", "1", "--log-format", "text"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        ca = (tls_dir / "ca.crt").read_bytes()
        ctx = ssl.create_default_context(cadata=ca.decode())
        cut_off: list[bool] = []

        def dribble() -> None:
            raw = socket.create_connection(("127.0.0.1", port), 5)
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"POST /mutate HTTP/1.1\r\n")
                for _ in range(40):
                    if stop.wait(1.0):
                        return
                    try:
                        s.sendall(b"X")
                    except OSError:
                        cut_off.append(True)
                        return

        t = threading.Thread(target=dribble, daemon=True)
        t.start()
        time.sleep(1.5)  # the dribbler holds the only worker now
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=15)
        conn.request("POST", "/mutate", review_body(pod()), {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        stop.set()
        proc.terminate()
        proc.wait(15)


def test_an_idle_kept_alive_connection_stays_open_past_the_read_timeout(tls_dir: Path) -> None:
    """The API server keeps connections to a webhook alive (client-go closes them after
    90 s idle) and may send on one at any moment: if the webhook closed idle
    connections sooner, a call could go out on a connection being closed and fail
    ("use of closed network connection"; with failurePolicy Fail the pod is refused).
    So a connection that served a request stays open past --read-timeout (2 s here)."""
    write_bundle(tls_dir)
    port, health = free_ports(2)
    proc = subprocess.Popen([EXE, "--host", "127.0.0.1", "--port", str(port), "--health-port",
                             str(health), "--tls-cert-file", str(tls_dir / "tls.crt"),
                             "--tls-key-file", str(tls_dir / "tls.key"), "--read-timeout", "2",
                             "--log-format", "text"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        ca = (tls_dir / "ca.crt").read_bytes()
        ctx = ssl.create_default_context(cadata=ca.decode())
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        conn.request("POST", "/mutate", review_body(pod()), {"Content-Type": "application/json"})
        assert conn.getresponse().read()
        first = conn.sock
        time.sleep(4.5)  # idle, past --read-timeout and the server's expiry checks
        conn.request("POST", "/mutate", review_body(pod()), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and conn.sock is first  # same connection, still open
        resp.read()
        conn.close()
    finally:
        proc.terminate()
        proc.wait(15)
