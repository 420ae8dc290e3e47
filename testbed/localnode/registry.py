"""A read-only OCI distribution registry serving the node's local images.

Pods whose image tag is ``latest`` (the guide's ``image: nginx``) get
``imagePullPolicy: Always``, so the kubelet asks containerd to pull; containerd's
registry mirrors for docker.io and registry.k8s.io point here (one instance per node,
on the node netns' loopback), the manifest resolves, and the blobs are already local.
Nothing leaves the machine.

Besides the archive, it serves every OCI image layout (a directory with ``index.json``
and ``blobs/``) under ``--images-dir`` (default ``$TKE_LOCAL_IMAGES`` or
/var/cache/tke-vpc-cni/images): each manifest of an ``index.json`` under the
reference its ``org.opencontainers.image.ref.name`` annotation gives (short names
normalised as containerd does: ``tke-vpc-cni:dev`` is ``docker.io/library/tke-vpc-cni:dev``).
``hack/image/build.sh`` exports the component image there; the directory is read
again on a miss, so an image exported after the node started is served too. Their
blobs are streamed from disk.

Usage: python -m localnode.registry --archive images.tar --listen 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from localnode.oci import ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, MEDIA_MANIFEST

log = logging.getLogger("localnode.registry")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")
LOCAL_IMAGES_DIR = Path(os.environ.get("TKE_LOCAL_IMAGES", "/var/cache/tke-vpc-cni/images"))


def normalize_ref(ref: str) -> str:
    """A reference as containerd names it: ``name:tag`` -> ``docker.io/library/name:tag``,
    ``org/name:tag`` -> ``docker.io/org/name:tag``; a ref with a registry host is kept."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ref
    return f"docker.io/{ref}" if rest else f"docker.io/library/{ref}"


@dataclass
class Layouts:
    """The OCI image layouts under one directory: refs and blob files, read from disk."""

    root: Path
    refs: dict[str, tuple[str, str]]  # full ref -> (manifest digest, media type)
    files: dict[str, Path]  # digest -> blob file

    @classmethod
    def scan(cls, root: Path) -> Layouts:
        refs: dict[str, tuple[str, str]] = {}
        files: dict[str, Path] = {}
        for index in sorted(root.glob("*/index.json")) if root.is_dir() else []:
            try:
                manifests = json.loads(index.read_text()).get("manifests", [])
            except (OSError, ValueError) as exc:
                log.warning("skipping the image layout %s: %s", index.parent, exc)
                continue
            for m in manifests:
                name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME, "")
                if "/" in name or ":" in name:
                    refs[normalize_ref(name)] = (m["digest"],
                                                 m.get("mediaType", MEDIA_MANIFEST))
            blobs = index.parent / "blobs" / "sha256"
            for blob in blobs.iterdir() if blobs.is_dir() else []:
                files["sha256:" + blob.name] = blob
        return cls(root, refs, files)


@dataclass
class Store:
    blobs: dict[str, bytes]
    refs: dict[str, str]  # full ref (host/name:tag) -> manifest digest
    layouts: Layouts | None = None  # --images-dir

    @classmethod
    def load(cls, archive: Path) -> Store:
        blobs: dict[str, bytes] = {}
        index: dict[str, object] = {}
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member) if member.isfile() else None
                if f is None:
                    continue
                if member.name.startswith("blobs/sha256/"):
                    blobs["sha256:" + member.name.rsplit("/", 1)[1]] = f.read()
                elif member.name == "index.json":
                    index = json.loads(f.read())
        refs = {}
        for m in index.get("manifests", []):  # type: ignore[attr-defined]
            name = m.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME)
            if name:
                refs[name] = m["digest"]
        return cls(blobs, refs)

    def manifest(self, host: str, name: str, ref: str) -> str | None:
        if ref.startswith("sha256:"):
            return ref if ref in self.blobs or self.blob_file(ref) else None
        wanted = f"{host}/{name}:{ref}" if host else None
        for full, digest in self.refs.items():
            if full == wanted or (not host and full.split("/", 1)[1] == f"{name}:{ref}"):
                return digest
        if self.layouts is not None and wanted:
            if wanted not in self.layouts.refs:  # exported after we started?
                self.layouts = Layouts.scan(self.layouts.root)
            if wanted in self.layouts.refs:
                return self.layouts.refs[wanted][0]
        return None

    def blob_file(self, digest: str) -> Path | None:
        if self.layouts is None:
            return None
        path = self.layouts.files.get(digest)
        if path is None or not path.is_file():
            self.layouts = Layouts.scan(self.layouts.root)
            path = self.layouts.files.get(digest)
        return path

    def media_type(self, digest: str) -> str:
        if self.layouts is not None:
            for d, mt in self.layouts.refs.values():
                if d == digest:
                    return mt
        return MEDIA_MANIFEST


def make_handler(store: Store) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s " + format, self.client_address[0], *args)

        def _send(self, code: int, body: bytes, ctype: str, digest: str = "") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Docker-Distribution-API-Version", "registry/2.0")
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _not_found(self, what: str) -> None:
            body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": what}]})
            self._send(404, body.encode(), "application/json")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            host = parse_qs(url.query).get("ns", [""])[0]
            if url.path in ("/v2", "/v2/"):
                self._send(200, b"{}", "application/json")
            elif m := _MANIFEST.match(url.path):
                digest = store.manifest(host, m["name"], m["ref"])
                if digest is None:
                    self._not_found(f"{host}/{m['name']}:{m['ref']} is not a local image")
                elif digest in store.blobs:
                    self._send(200, store.blobs[digest], MEDIA_MANIFEST, digest)
                else:
                    self._send_file(digest, store.media_type(digest))
            elif (m := _BLOB.match(url.path)) and m["digest"] in store.blobs:
                self._send(200, store.blobs[m["digest"]], "application/octet-stream",
                           m["digest"])
            elif m and store.blob_file(m["digest"]) is not None:
                self._send_file(m["digest"], "application/octet-stream")
            else:
                self._not_found(url.path)

        def _send_file(self, digest: str, ctype: str) -> None:
            path = store.blob_file(digest)
            try:
                f = path.open("rb") if path is not None else None
            except OSError as exc:
                log.warning("blob %s unreadable: %s", digest, exc)
                f = None
            if f is None:
                self._not_found(f"blob {digest} is gone")
                return
            with f:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                self.send_header("Docker-Distribution-API-Version", "registry/2.0")
                self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command != "HEAD":
                    shutil.copyfileobj(f, self.wfile, 1 << 20)

        def do_HEAD(self) -> None:
            self.do_GET()

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localnode.registry", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", required=True, type=Path, help="OCI archive to serve")
    p.add_argument("--listen", default="127.0.0.1:5000", help="HOST:PORT (default %(default)s)")
    p.add_argument("--images-dir", type=Path, default=LOCAL_IMAGES_DIR,
                   help="OCI image layouts to serve too (default %(default)s; "
                        "env TKE_LOCAL_IMAGES)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    store = Store.load(args.archive)
    store.layouts = Layouts.scan(args.images_dir)
    server = ThreadingHTTPServer((host, int(port)), make_handler(store))
    log.info("serving %s and %s from %s on %s", sorted(store.refs),
             sorted(store.layouts.refs), args.images_dir, args.listen)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
