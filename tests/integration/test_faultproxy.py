"""The apiserver fault proxy (localcluster/faultproxy.py) in front of the real
kube-apiserver: with no fault in force it is transparent (CRUD, errors of the
apiserver, watches streamed as they happen, identities: bearer tokens passed
through, client certificates impersonated, a Go client); with a rule it
injects exactly what it was told and nothing else.

Requests go through raw ``http.client`` (no client retries) so each test sees
exactly one reply per request."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.apifaults import rule
from localcluster.binaries import BinariesMissingError, k8s_binaries
from localcluster.controlplane import ControlPlane
from localcluster.faultproxy import FaultProxy

NS = "default"
CM = f"/api/v1/namespaces/{NS}/configmaps"


class Raw:
    """One HTTPS connection per request, no retries."""

    def __init__(
        self, url: str, ca: Path, cert: Path | None = None, key: Path | None = None,
        token: str = "",
    ) -> None:
        host, port = url.removeprefix("https://").split(":")
        self.host, self.port, self.token = host, int(port), token
        self.ctx = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            self.ctx.load_cert_chain(str(cert), str(key))

    def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
        try:
            hdrs = {"Accept": "application/json", **(headers or {})}
            if self.token:
                hdrs["Authorization"] = f"Bearer {self.token}"
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            headers = dict(resp.getheaders())
            if "json" not in headers.get("Content-Type", ""):
                return resp.status, headers, raw.decode()
            return resp.status, headers, json.loads(raw) if raw else None
        finally:
            conn.close()


def cm(name: str, value: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"v": value}}


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def proxy(control_plane: ControlPlane, tmp_path: Path) -> Iterator[FaultProxy]:
    assert control_plane.pki is not None
    with FaultProxy.for_pki(control_plane.server, control_plane.pki, tmp_path) as p:
        yield p


@pytest.fixture
def direct(control_plane: ControlPlane) -> Raw:
    pki = control_plane.pki
    assert pki is not None
    return Raw(control_plane.server, pki.ca_cert, pki.admin_cert, pki.admin_key)


@pytest.fixture
def via(control_plane: ControlPlane, proxy: FaultProxy) -> Raw:
    pki = control_plane.pki
    assert pki is not None
    return Raw(proxy.url, pki.ca_cert, pki.admin_cert, pki.admin_key)


def test_transparent_with_no_fault(proxy: FaultProxy, via: Raw, direct: Raw) -> None:
    proxy.set_rules(rule("error", 0.0), rule("reply-lost", 0.0), rule("timeout", 0.0))
    name = uniq("fp-crud")
    st, _, obj = via.call("POST", CM, cm(name))
    assert st == 201, obj
    st, _, got = via.call("GET", f"{CM}/{name}")
    assert st == 200 and got == direct.call("GET", f"{CM}/{name}")[2]
    st, _, dup = via.call("POST", CM, cm(name))
    assert (st, dup["reason"], dup["code"]) == (409, "AlreadyExists", 409)
    st, _, patched = via.call(
        "PATCH", f"{CM}/{name}", {"data": {"v": "2"}}, content_type="application/merge-patch+json"
    )
    assert st == 200 and patched["data"] == {"v": "2"}
    patched["data"]["v"] = "3"
    st, _, put = via.call("PUT", f"{CM}/{name}", patched)
    assert st == 200 and put["data"] == {"v": "3"}
    stale = dict(patched, metadata=dict(patched["metadata"], resourceVersion="1"))
    st, _, conflict = via.call("PUT", f"{CM}/{name}", stale)
    assert (st, conflict["reason"]) == (409, "Conflict")
    st, _, listed = via.call("GET", f"{CM}?limit=1")
    assert st == 200 and listed["kind"] == "ConfigMapList" and len(listed["items"]) == 1
    st, _, _ = via.call("DELETE", f"{CM}/{name}")
    assert st == 200
    st, _, missing = via.call("GET", f"{CM}/{name}")
    assert (st, missing["reason"]) == (404, "NotFound")
    assert direct.call("GET", f"{CM}/{name}")[0] == 404
    assert via.call("GET", "/readyz")[:3:2] == (200, "ok")
    assert proxy.plan.stats() == {}
    assert proxy.plan.requests == 10
    assert proxy.upstream_errors == 0


def test_watch_streams_through_as_events_happen(
    proxy: FaultProxy, via: Raw, direct: Raw, control_plane: ControlPlane
) -> None:
    proxy.set_rules(rule("error", 0.0, verbs="watch"))
    prefix = uniq("fp-watch")
    rv = via.call("GET", CM)[2]["metadata"]["resourceVersion"]
    pki = control_plane.pki
    assert pki is not None
    host, port = proxy.url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
    conn.request("GET", f"{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=50")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
    seen: list[str] = []
    got = threading.Event()

    def read() -> None:
        buf = b""
        with contextlib.suppress(OSError, http.client.HTTPException):
            while len(seen) < 3:
                data = resp.read1(4096)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    ev = json.loads(line)
                    name = ev["object"]["metadata"]["name"]
                    if name.startswith(prefix):
                        seen.append(f"{ev['type']} {name}")
                        got.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        # one object at a time: each event must arrive while the stream stays open
        for i in range(3):
            got.clear()
            assert direct.call("POST", CM, cm(f"{prefix}-{i}"))[0] == 201
            assert got.wait(20), f"event {i} not relayed within 20s; seen {seen}"
        assert seen == [f"ADDED {prefix}-{i}" for i in range(3)]
    finally:
        conn.close()
        t.join(10)
        for i in range(3):
            direct.call("DELETE", f"{CM}/{prefix}-{i}")
    assert proxy.plan.stats() == {}


def test_bearer_token_passed_through_and_client_cert_impersonated(
    proxy: FaultProxy, via: Raw, direct: Raw, control_plane: ControlPlane
) -> None:
    sa = uniq("fp-sa")
    assert direct.call(
        "POST", f"/api/v1/namespaces/{NS}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa}},
    )[0] == 201
    try:
        st, _, tr = direct.call(
            "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 600}},
        )
        assert st == 201, tr
        pki = control_plane.pki
        assert pki is not None
        token_client = Raw(proxy.url, pki.ca_cert, token=tr["status"]["token"])
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
        st, _, me = token_client.call("POST", path, review)
        assert st == 201, me
        assert me["status"]["userInfo"]["username"] == f"system:serviceaccount:{NS}:{sa}"
        st, _, denied = token_client.call("GET", "/api/v1/namespaces/kube-system/secrets")
        assert (st, denied["reason"]) == (403, "Forbidden")
        assert f"system:serviceaccount:{NS}:{sa}" in denied["message"]

        st, _, admin = via.call("POST", path, review)
        assert st == 201, admin
        info = admin["status"]["userInfo"]
        assert info["username"] == "tke-localcluster-admin"
        assert "system:masters" in info["groups"]
        st, _, refused = via.call("GET", CM, headers={"Impersonate-User": "someone"})
        assert st == 400 and "Impersonate" in refused["message"]
    finally:
        direct.call("DELETE", f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}")


def test_error_is_not_forwarded(proxy: FaultProxy, via: Raw, direct: Raw) -> None:
    proxy.set_rules(rule("error", verbs="create", resources="configmaps"))
    name = uniq("fp-500")
    st, _, body = via.call("POST", CM, cm(name))
    assert (st, body["kind"], body["code"], body["reason"]) == (500, "Status", 500, "InternalError")
    assert direct.call("GET", f"{CM}/{name}")[0] == 404
    assert via.call("GET", f"{CM}/{name}")[0] == 404  # another verb: untouched
    proxy.set_rules(rule("error", verbs="list", status=429))
    st, headers, body = via.call("GET", CM)
    assert (st, headers.get("Retry-After"), body["details"]["retryAfterSeconds"]) == (429, "1", 1)
    assert proxy.plan.stats() == {"error-500": 1, "error-429": 1}


def test_error_after_write_and_reply_lost_perform_the_write(
    proxy: FaultProxy, via: Raw, direct: Raw
) -> None:
    a, b = uniq("fp-eaw"), uniq("fp-lost")
    try:
        proxy.set_rules(rule("error-after-write", verbs="create", status=504))
        st, _, body = via.call("POST", CM, cm(a))
        assert (st, body["reason"]) == (504, "Timeout")
        assert direct.call("GET", f"{CM}/{a}")[0] == 200
        proxy.set_rules(rule("reply-lost", verbs="create"))
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            via.call("POST", CM, cm(b))
        assert direct.call("GET", f"{CM}/{b}")[0] == 200
        assert proxy.plan.stats() == {"error-after-write-504": 1, "reply-lost": 1}
    finally:
        direct.call("DELETE", f"{CM}/{a}")
        direct.call("DELETE", f"{CM}/{b}")


def test_timeout_holds_then_drops_without_forwarding(
    proxy: FaultProxy, via: Raw, direct: Raw
) -> None:
    name = uniq("fp-timeout")
    proxy.set_rules(rule("timeout", verbs="create", delay=0.3))
    t0 = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        via.call("POST", CM, cm(name))
    assert time.monotonic() - t0 >= 0.3  # held at least that long (a lower bound only)
    assert direct.call("GET", f"{CM}/{name}")[0] == 404
    proxy.set_rules(rule("slow", verbs="create", delay=0.2))
    assert via.call("POST", CM, cm(name))[0] == 201
    direct.call("DELETE", f"{CM}/{name}")
    assert proxy.plan.stats() == {"timeout": 1, "slow": 1}


def test_exactly_as_told_limit_verbs_resources(proxy: FaultProxy, via: Raw, direct: Raw) -> None:
    name = uniq("fp-limit")
    assert direct.call("POST", CM, cm(name))[0] == 201
    try:
        proxy.set_rules(rule("error", verbs="get", resources="configmaps", limit=2, status=503))
        codes = [via.call("GET", f"{CM}/{name}")[0] for _ in range(4)]
        assert codes == [503, 503, 200, 200]
        assert via.call("GET", CM)[0] == 200  # list: not a "get"
        assert via.call("GET", f"/api/v1/namespaces/{NS}")[0] == 200  # another resource
        proxy.set_rules(rule("error", verbs="watch", resources="configmaps"))
        st, _, _ = via.call("GET", f"{CM}?watch=true&timeoutSeconds=1")
        assert st == 500
        assert via.call("GET", f"{CM}/{name}")[0] == 200
        assert proxy.plan.stats() == {"error-503": 2, "error-500": 1}
    finally:
        direct.call("DELETE", f"{CM}/{name}")


def test_stop_ends_open_watches(control_plane: ControlPlane, tmp_path: Path) -> None:
    pki = control_plane.pki
    assert pki is not None
    p = FaultProxy.for_pki(control_plane.server, pki, tmp_path).start()
    host, port = p.url.removeprefix("https://").split(":")
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=60)
    conn.request("GET", f"{CM}?watch=true&timeoutSeconds=300")
    resp = conn.getresponse()
    assert resp.status == 200
    ended = threading.Event()

    def read() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            while resp.read1(4096):
                pass
        ended.set()

    threading.Thread(target=read, daemon=True).start()
    done = threading.Thread(target=p.stop, daemon=True)
    done.start()
    done.join(30)
    assert not done.is_alive(), "stop() did not return with a watch open"
    assert ended.wait(10), "the client's watch was not ended by stop()"
    conn.close()


def test_go_client_through_the_proxy(
    proxy: FaultProxy, control_plane: ControlPlane, tmp_path: Path
) -> None:
    try:
        kubectl = k8s_binaries().kubectl
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "via.kubeconfig")
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kc), "get", "--raw", f"/api/v1/namespaces/{NS}"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["metadata"]["name"] == NS
    proxy.set_rules(rule("error", verbs="get", resources="namespaces", status=500))
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kc), "get", "namespace", NS, "--request-timeout=20s"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode != 0 and "fault injected" in out.stderr, out.stderr
    assert proxy.plan.stats().get("error-500", 0) >= 1
