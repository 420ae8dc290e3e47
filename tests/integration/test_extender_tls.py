"""The extender's verbs over mutual TLS (scheduler_extender.tlsserve on loopback,
certificates from localcluster.extender_pki, made with openssl): kube-scheduler's
client certificate is required at the handshake, other clients are refused
before they can send a byte of HTTP; certificate files are checked at start
and reloaded when they change; idle, slow-handshaking and oversize clients do
not keep the real client from being answered."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster import objects as ex
from localcluster.extender_pki import ExtenderPKI, issue_server, make_extender_pki
from scheduler_extender.app import create_app
from scheduler_extender.cli import ServerThread, health_listener
from scheduler_extender.config import Settings
from scheduler_extender.metrics import Metrics
from scheduler_extender.tlsserve import TLSConfigError, TLSFiles, build_context
from tests.integration.test_extender_http import seeded_store

ROOT = Path(__file__).resolve().parents[2]
MAX_BODY = 1024 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ExtenderPKI:
    return make_extender_pki(tmp_path_factory.mktemp("extender-pki"))


class TLSExtender:
    def __init__(self, pki: ExtenderPKI, **settings: Any) -> None:
        self.pki = pki
        self.settings = Settings(
            host="127.0.0.1", port=0, max_body_bytes=MAX_BODY,
            tls_cert_file=str(pki.server_cert), tls_key_file=str(pki.server_key),
            client_ca_file=str(pki.client_ca), **settings,
        )
        self.app = create_app(seeded_store(), self.settings)
        self.server = ServerThread(self.app, self.settings)
        self.port = self.server.port

    def conn(self, ctx: ssl.SSLContext | None = None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=20,
                                           context=ctx or self.pki.client_context())

    def post(self, path: str, body: bytes, ctx: ssl.SSLContext | None = None) -> tuple[int, Any]:
        c = self.conn(ctx)
        try:
            c.request("POST", path, body, {"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def metrics(self) -> str:
        c = self.conn()
        try:
            c.request("GET", "/metrics")
            return c.getresponse().read().decode()
        finally:
            c.close()

    def close(self) -> None:
        self.server.stop()


@pytest.fixture
def extender(pki: ExtenderPKI) -> Iterator[TLSExtender]:
    e = TLSExtender(pki)
    try:
        yield e
    finally:
        e.close()


def refused(port: int, ctx: ssl.SSLContext, *, send: bool = False) -> str:
    """Connect (and with ``send`` try one request); return the TLS error (the test
    fails if any HTTP byte comes back)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            # TLS 1.3: the client's side of the handshake can finish before the
            # server has checked the certificate; the alert arrives on the next read
            if send:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(100)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
        return str(exc)
    assert got == b"", f"the server answered: {got!r}"
    return "closed without an answer"


def test_scheduler_certificate_is_answered(extender: TLSExtender) -> None:
    status, body = extender.post("/filter", ex.filter_args(ex.pod(), ["a1", "b1"]))
    assert status == 200
    assert body["NodeNames"] == ["a1"]


@pytest.mark.parametrize("tls_max", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_no_certificate_or_another_ca_is_refused_at_the_handshake(
    extender: TLSExtender, tls_max: ssl.TLSVersion
) -> None:
    none = extender.pki.client_context(with_certificate=False)
    stranger = extender.pki.client_context(stranger=True)
    for ctx in (none, stranger):
        ctx.maximum_version = tls_max
    err_none = refused(extender.port, none)
    err_stranger = refused(extender.port, stranger)
    # a request sent at once (as kube-scheduler does) still reads the alert, not a reset
    err_sent = refused(extender.port, stranger, send=True)
    assert "UNKNOWN_CA" in err_sent.upper() or "unknown ca" in err_sent.lower(), err_sent
    print(f"no certificate: {err_none}\nanother CA: {err_stranger}")
    if tls_max == ssl.TLSVersion.TLSv1_3:
        assert "CERTIFICATE_REQUIRED" in err_none.upper()
    assert "UNKNOWN_CA" in err_stranger.upper() or "unknown ca" in err_stranger.lower()
    # plain HTTP to the TLS port gets no HTTP answer either
    with socket.create_connection(("127.0.0.1", extender.port), timeout=20) as s:
        s.sendall(b"POST /filter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert not s.recv(100).startswith(b"HTTP/")
    text = extender.metrics()
    assert "tke_eni_extender_tls_refused_connections_total 4.0" in text
    assert 'tke_eni_extender_requests_total{code="200",verb="filter"}' not in text


def test_client_names_restrict_the_certificate_subject(pki: ExtenderPKI) -> None:
    e = TLSExtender(pki, client_names="system:kube-scheduler")
    try:
        assert e.post("/filter", ex.filter_args(ex.pod(), ["a1"]))[0] == 200
    finally:
        e.close()
    e = TLSExtender(pki, client_names="someone-else")
    try:
        # the handshake itself succeeds; the server closes before reading a request
        assert refused(e.port, pki.client_context()) == "closed without an answer"
    finally:
        e.close()


def test_oversize_body_is_413_over_tls(extender: TLSExtender) -> None:
    # http.client sends the whole body before reading: stay within what the server
    # drains after its 413 (twice the limit); Go's client reads the early reply
    status, body = extender.post("/filter", b" " * (MAX_BODY * 3 // 2))
    assert status == 413
    assert "exceeds the limit of 1048576 bytes (--max-body-bytes" in body["Error"]
    assert extender.post("/filter", ex.filter_args(ex.pod(), ["a1"]))[0] == 200


def test_idle_slow_and_oversize_clients_do_not_starve_the_scheduler(pki: ExtenderPKI) -> None:
    """2 workers, a 60 s read timeout: 8 idle TCP connections, 8 that sent half a
    ClientHello and 4 that stream oversize bodies stay open while the scheduler's
    requests are answered (the client gives up after 20 s, far below the 60 s the
    slow ones could hold a worker if they took one)."""
    e = TLSExtender(pki, threads=2, read_timeout=60.0)
    hold: list[socket.socket] = []
    stop = threading.Event()
    try:
        hello = _client_hello(pki)
        for i in range(16):
            s = socket.create_connection(("127.0.0.1", e.port), timeout=20)
            if i % 2:
                s.sendall(hello[: len(hello) // 2])
            hold.append(s)

        def oversize() -> None:
            c = e.conn()
            try:
                c.putrequest("POST", "/filter")
                c.putheader("Content-Length", str(MAX_BODY * 100))
                c.endheaders()
                while not stop.is_set():
                    c.send(b" " * 65536)
            except OSError:
                pass
            finally:
                c.close()

        senders = [threading.Thread(target=oversize, daemon=True) for _ in range(4)]
        for t in senders:
            t.start()
        for _ in range(5):
            status, body = e.post("/filter", ex.filter_args(ex.pod(), ["a1"]))
            assert (status, body["NodeNames"]) == (200, ["a1"])
        stop.set()
        for t in senders:
            t.join(30)
    finally:
        stop.set()
        for s in hold:
            s.close()
        e.close()


def _client_hello(pki: ExtenderPKI) -> bytes:
    """The first flight of a TLS client, captured from a memory BIO."""
    ctx = pki.client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_certificate_files_are_reloaded_when_they_change(tmp_path: Path) -> None:
    pki = make_extender_pki(tmp_path / "pki")
    e = TLSExtender(pki)
    try:
        first = _server_cert(e)
        keep = e.conn()
        keep.request("GET", "/healthz")
        assert keep.getresponse().read() == b"ok\n"
        # a broken pair (the key of another certificate): logged, the old one stays
        good_key = pki.server_key.read_bytes()
        shutil.copy(pki.stranger_key, pki.server_key)
        os.utime(pki.server_key, ns=(1, 1))
        _wait(lambda: 'tke_eni_extender_tls_reloads_total{result="failed"} 1.0' in e.metrics())
        assert _server_cert(e) == first
        pki.server_key.write_bytes(good_key)
        # a new certificate (new key), as a Secret update would bring
        issue_server(pki.directory)
        _wait(lambda: _server_cert(e) != first)
        assert e.post("/filter", ex.filter_args(ex.pod(), ["a1"]))[0] == 200
        keep.request("GET", "/healthz")  # connections made before keep working
        assert keep.getresponse().read() == b"ok\n"
        keep.close()
        assert 'tke_eni_extender_tls_reloads_total{result="ok"}' in e.metrics()
    finally:
        e.close()


def _server_cert(e: TLSExtender) -> bytes:
    with socket.create_connection(("127.0.0.1", e.port), timeout=20) as raw, \
            e.pki.client_context().wrap_socket(raw, server_hostname="localhost") as s:
        der = s.getpeercert(binary_form=True)
        assert der is not None
        return der


def _wait(cond: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_unusable_certificate_files_are_named(pki: ExtenderPKI, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    cases = {
        "missing": (TLSFiles(str(tmp_path / "nope.crt"), str(pki.server_key), str(pki.client_ca),
                             cert_label="--tls-cert-file"),
                    f"--tls-cert-file {tmp_path / 'nope.crt'}: cannot read: No such file"),
        "directory": (TLSFiles(str(pki.server_cert), str(tmp_path), str(pki.client_ca),
                               key_label="--tls-key-file"),
                      f"--tls-key-file {tmp_path}: cannot read: Is a directory"),
        "empty": (TLSFiles(str(pki.server_cert), str(pki.server_key), str(empty),
                           client_ca_label="--client-ca-file"),
                  f"--client-ca-file {empty}: file is empty"),
        "mismatch": (TLSFiles(str(pki.server_cert), str(pki.stranger_key), str(pki.client_ca),
                              cert_label="--tls-cert-file", key_label="--tls-key-file"),
                     f"--tls-key-file {pki.stranger_key} does not match the certificate in "
                     f"--tls-cert-file {pki.server_cert}"),
        "ca not pem": (TLSFiles(str(pki.server_cert), str(pki.server_key), str(pki.server_key),
                                client_ca_label="--client-ca-file"),
                       f"--client-ca-file {pki.server_key}: no"),
        "cert not pem": (TLSFiles(str(pki.server_key), str(pki.server_key), str(pki.client_ca)),
                         "not a PEM certificate and matching private key"),
    }
    for name, (files, needle) in cases.items():
        with pytest.raises(TLSConfigError) as err:
            build_context(files)
        assert needle in str(err.value), (name, str(err.value))


def test_cli_exits_2_naming_the_bad_file(pki: ExtenderPKI, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "scheduler_extender.cli", "--log-format", "text",
            "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.stranger_key),
            "--client-ca-file", str(pki.client_ca), "--kubeconfig", str(tmp_path / "none")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "cannot serve TLS" in proc.stderr + proc.stdout
    assert f"--tls-key-file {pki.stranger_key} does not match the certificate" in (
        proc.stderr + proc.stdout)
    argv = [sys.executable, "-m", "scheduler_extender.cli", "--kubeconfig", str(tmp_path / "x")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert proc.returncode == 2
    assert "--tls-cert-file, --tls-key-file, --client-ca-file not set" in proc.stderr


def test_dribbling_clients_do_not_hold_the_health_port(pki: ExtenderPKI) -> None:
    """The plain health port (2 workers) with a 2 s read timeout: 6 clients send a
    request line and then one header byte every 0.5 s (each read succeeds, so only
    a deadline on the whole head frees the workers). Probes are still answered."""
    settings = Settings(host="127.0.0.1", port=0, health_port=0, insecure_http=True,
                        read_timeout=2.0)
    store = seeded_store()
    listener = health_listener(store, Metrics(store), settings)
    assert listener is not None
    listener.start()
    stop = threading.Event()

    def dribble() -> None:
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", listener.port), timeout=20) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while not stop.wait(0.5):
                s.sendall(b"a")

    threads = [threading.Thread(target=dribble, daemon=True) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=20)
            try:
                c.request("GET", "/healthz")
                assert c.getresponse().read() == b"ok\n"
            finally:
                c.close()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        listener.stop()
