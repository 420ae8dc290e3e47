"""A read-only OCI distribution registry serving the node's local images.

Pods whose image tag is ``latest`` (the guide's ``image: nginx``) get
``imagePullPolicy: Always``, so the kubelet asks containerd to pull; containerd's
registry mirrors for docker.io and registry.k8s.io point here (one instance per node,
on the node netns' loopback), the manifest resolves, and the blobs are already local.
Nothing leaves the machine.

Usage: python -m localnode.registry --archive images.tar --listen 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from localnode.oci import ANNOTATION_CONTAINERD_NAME, MEDIA_MANIFEST

log = logging.getLogger("localnode.registry")
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>sha256:[0-9a-f]{64})$")


@dataclass
class Store:
    blobs: dict[str, bytes]
    refs: dict[str, str]  # full ref (host/name:tag) -> manifest digest

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
            return ref if ref in self.blobs else None
        wanted = f"{host}/{name}:{ref}" if host else None
        for full, digest in self.refs.items():
            if full == wanted or (not host and full.split("/", 1)[1] == f"{name}:{ref}"):
                return digest
        return None


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
                else:
                    self._send(200, store.blobs[digest], MEDIA_MANIFEST, digest)
            elif (m := _BLOB.match(url.path)) and m["digest"] in store.blobs:
                self._send(200, store.blobs[m["digest"]], "application/octet-stream",
                           m["digest"])
            else:
                self._not_found(url.path)

        def do_HEAD(self) -> None:
            self.do_GET()

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localnode.registry", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archive", required=True, type=Path, help="OCI archive to serve")
    p.add_argument("--listen", default="127.0.0.1:5000", help="HOST:PORT (default %(default)s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    store = Store.load(args.archive)
    server = ThreadingHTTPServer((host, int(port)), make_handler(store))
    log.info("serving %s on %s", sorted(store.refs), args.listen)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
