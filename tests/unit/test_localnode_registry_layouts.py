"""The node registry serves OCI image layouts from its images directory (what
hack/image/build.sh exports) beside its archive: refs normalised as containerd names
them, blobs streamed from disk, a layout exported after start found on a miss, and a
broken index.json skipped."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from localnode.oci import ImageSpec, write_archive
from localnode.registry import Layouts, Store, make_handler, normalize_ref

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return "sha256:" + digest


def layout(root: Path, ref_name: str) -> tuple[str, str]:
    """An OCI layout with one image named ``ref_name``; returns (manifest, layer) digests."""
    layer = blob(root, b"layer bytes " * 1000)
    config = blob(root, b'{"architecture":"amd64","os":"linux"}')
    manifest_bytes = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config, "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer, "size": 12000}]}).encode()
    manifest = blob(root, manifest_bytes)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, "digest": manifest, "size": len(manifest_bytes),
         "annotations": {"org.opencontainers.image.ref.name": ref_name}}]}))
    return manifest, layer


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    return d


@pytest.fixture
def registry(tmp_path: Path, images_dir: Path) -> Iterator[str]:
    archive = tmp_path / "base.tar"
    write_archive([ImageSpec("docker.io/library/busybox:latest", [], cmd=["sh"])], archive)
    store = Store.load(archive)
    store.layouts = Layouts.scan(images_dir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # loopback only
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize(("ref", "full"), [
    ("tke-vpc-cni:dev", "docker.io/library/tke-vpc-cni:dev"),
    ("org/tke-vpc-cni:dev", "docker.io/org/tke-vpc-cni:dev"),
    ("docker.io/library/tke-vpc-cni:dev", "docker.io/library/tke-vpc-cni:dev"),
    ("localhost/tke-vpc-cni:dev", "localhost/tke-vpc-cni:dev"),
    ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
    ("127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1"),
])
def test_refs_are_normalised_as_containerd_does(ref: str, full: str) -> None:
    assert normalize_ref(ref) == full


def test_a_layout_exported_after_start_is_served_from_disk(registry: str,
                                                           images_dir: Path) -> None:
    path = "/v2/library/tke-vpc-cni/manifests/dev?ns=docker.io"
    code, _, body = get(registry + path)
    assert code == 404 and b"not a local image" in body
    manifest, layer = layout(images_dir / "tke-vpc-cni", "tke-vpc-cni:dev")
    code, headers, body = get(registry + path)
    assert code == 200, body
    assert headers["Docker-Content-Digest"] == manifest
    assert headers["Content-Type"] == MANIFEST
    assert "sha256:" + hashlib.sha256(body).hexdigest() == manifest
    code, headers, body = get(f"{registry}/v2/library/tke-vpc-cni/blobs/{layer}?ns=docker.io")
    assert code == 200 and body == b"layer bytes " * 1000
    assert headers["Content-Length"] == str(len(body))
    # the archive's images are still served
    code, _, _ = get(registry + "/v2/library/busybox/manifests/latest?ns=docker.io")
    assert code == 200


def test_a_broken_index_is_skipped_and_others_served(images_dir: Path) -> None:
    (images_dir / "broken").mkdir()
    (images_dir / "broken" / "index.json").write_text("{not json")
    manifest, _ = layout(images_dir / "good", "docker.io/library/tke-vpc-cni:dev")
    scanned = Layouts.scan(images_dir)
    assert scanned.refs == {"docker.io/library/tke-vpc-cni:dev": (manifest, MANIFEST)}


def test_no_images_dir_serves_the_archive_only(tmp_path: Path) -> None:
    assert Layouts.scan(tmp_path / "absent").refs == {}
