"""kit.kubelite's configuration: the in-cluster ServiceAccount (token file,
ca.crt, KUBERNETES_SERVICE_HOST/PORT) and kubeconfig files (server, CA file or
data, token, client certificate data); what it cannot use is refused with the
reason. Requests against a real server: tests/integration/test_agent_kube.py."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kit.kubelite import KubeApiError, KubeConfigError, KubeLite, from_kubeconfig, in_cluster


def test_in_cluster_needs_the_service_env_and_the_token(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster({}, str(tmp_path))
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(KubeConfigError, match="no ServiceAccount token"):
        in_cluster(env, str(tmp_path))
    (tmp_path / "token").write_text("tok\n")
    with pytest.raises(KubeConfigError, match=r"ca\.crt"):
        in_cluster(env, str(tmp_path))


def test_kubeconfig_refuses_what_a_node_never_has(tmp_path: Path) -> None:
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps({
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}],
    }))  # fmt: skip
    with pytest.raises(KubeConfigError, match="'exec' is not supported"):
        from_kubeconfig(str(cfg))
    with pytest.raises(KubeConfigError, match="no context named 'other'"):
        from_kubeconfig(str(cfg), "other")
    with pytest.raises(KubeConfigError, match="want https"):
        KubeLite("127.0.0.1:6443")


class _Api(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str, bytes]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, self.headers.get("Authorization", ""), body))
        status = 404 if "missing" in self.path else 200
        data = json.dumps({"message": "not found"} if status == 404 else {"ok": True}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_calls_carry_the_token_and_reuse_the_connection(api_server: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret-1\n")
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps({
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": api_server}}],
        "users": [{"name": "u", "user": {"tokenFile": "token"}}],
    }))  # fmt: skip
    api = from_kubeconfig(str(cfg))
    _Api.seen.clear()
    assert api.call("GET", "/api/v1/nodes/n1") == {"ok": True}
    api.call("PATCH", "/x/status", body={"a": 1}, content_type="application/merge-patch+json")
    with pytest.raises(KubeApiError) as err:
        api.call("GET", "/missing")
    assert err.value.status == 404 and "not found" in str(err.value)
    assert [(m, p, a) for m, p, a, _ in _Api.seen] == [
        ("GET", "/api/v1/nodes/n1", "Bearer secret-1"),
        ("PATCH", "/x/status", "Bearer secret-1"),
        ("GET", "/missing", "Bearer secret-1"),
    ]
    assert json.loads(_Api.seen[1][3]) == {"a": 1}
    answer = api.get("/list", [("limit", "5")], stream=False, timeout=5)
    assert answer.status == 200 and json.loads(answer.data) == {"ok": True}
    api.close()
    dead = KubeLite("http://127.0.0.1:1")
    with pytest.raises(KubeApiError) as gone:
        dead.call("GET", "/x")
    assert gone.value.status == 0


def test_client_certificate_data_is_loaded(tmp_path: Path) -> None:
    """A kubeconfig's client-certificate-data/-key-data (base64 PEM) load into
    the TLS context; bad base64 is refused naming the field."""
    import subprocess

    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
         str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem"), "-days", "1", "-subj", "/CN=t"],
        check=True, capture_output=True,
    )  # fmt: skip
    b64 = {n: base64.b64encode((tmp_path / f"{n}.pem").read_bytes()).decode() for n in "ck"}
    doc = {
        "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443",
                                               "certificate-authority-data": b64["c"]}}],
        "users": [{"name": "u", "user": {"client-certificate-data": b64["c"],
                                          "client-key-data": b64["k"]}}],
    }  # fmt: skip
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(doc))
    api = from_kubeconfig(str(cfg))
    assert api.context is not None and api.host == "127.0.0.1" and api.port == 6443
    doc["users"][0]["user"]["client-key-data"] = "%%%"  # type: ignore[index]
    cfg.write_text(json.dumps(doc))
    with pytest.raises(KubeConfigError):
        from_kubeconfig(str(cfg))
