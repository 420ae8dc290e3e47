"""A pure-Python writer of OCI image archives (image layout in a tar), no docker needed.

One image = one uncompressed layer built from files we list, an image config and a
manifest; the archive's ``index.json`` names each image with both the OCI ref-name
annotation and containerd's ``io.containerd.image.name`` so ``ctr images import``
registers the full reference (e.g. ``docker.io/library/busybox:latest``).
Everything is deterministic (fixed mtimes and owners), so the same inputs give the
same digests and re-imports are no-ops.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
_EPOCH = 0


@dataclass(frozen=True)
class Entry:
    """One entry of a layer: a regular file (from ``source`` or ``data``), a dir or a symlink."""

    path: str  # path inside the image, without a leading slash
    kind: str = "file"  # "file" | "dir" | "symlink"
    source: Path | None = None
    data: bytes | None = None
    target: str = ""  # symlink target
    mode: int = 0o755


@dataclass(frozen=True)
class ImageSpec:
    """What one image is: its full reference, its files and its runtime config."""

    ref: str  # e.g. docker.io/library/busybox:latest
    entries: Sequence[Entry]
    cmd: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    workdir: str = "/"
    exposed_ports: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Blob:
    digest: str
    data: bytes

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls("sha256:" + hashlib.sha256(data).hexdigest(), data)


def build_layer(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tar, with parent directories added and entries sorted."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        parts = e.path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, Entry(parent, kind="dir"))
        by_path[e.path.strip("/")] = e
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            tar_entry(tar, by_path[path])
    return buf.getvalue()


def tar_entry(tar: tarfile.TarFile, e: Entry) -> None:
    info = tarfile.TarInfo(e.path.strip("/"))
    info.mtime = _EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = e.mode
    if e.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif e.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = e.target
        info.mode = 0o777
        tar.addfile(info)
    elif e.kind == "file":
        data = e.data if e.data is not None else _read(e)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        raise ValueError(f"unknown layer entry kind {e.kind!r} for {e.path!r}")


def _read(e: Entry) -> bytes:
    if e.source is None:
        raise ValueError(f"layer file {e.path!r} has neither data nor source")
    try:
        return e.source.read_bytes()
    except OSError as exc:
        raise OSError(f"cannot read {e.source} for image file {e.path!r}: {exc}") from exc


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def image_blobs(spec: ImageSpec) -> tuple[Blob, list[Blob]]:
    """The manifest blob and all blobs it references (config, layer)."""
    layer = Blob.of(build_layer(spec.entries))
    config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": list(spec.env),
            "Cmd": list(spec.cmd) or None,
            "Entrypoint": list(spec.entrypoint) or None,
            "WorkingDir": spec.workdir,
            "ExposedPorts": {p: {} for p in spec.exposed_ports} or None,
            "Labels": spec.labels or None,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "localnode.oci"}],
    }
    config["config"] = {k: v for k, v in config["config"].items() if v is not None}  # type: ignore[attr-defined]
    config_blob = Blob.of(_canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_blob.digest,
                   "size": len(config_blob.data)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": len(layer.data)}],
    }
    return Blob.of(_canonical(manifest)), [config_blob, layer]


def tag_of(ref: str) -> str:
    """The tag part of a reference (``latest`` when absent)."""
    last = ref.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def write_archive(specs: Sequence[ImageSpec], out: Path) -> dict[str, str]:
    """Write an OCI image-layout tar holding all ``specs``; return ref -> manifest digest."""
    blobs: dict[str, bytes] = {}
    manifests: list[dict[str, object]] = []
    digests: dict[str, str] = {}
    for spec in specs:
        manifest, others = image_blobs(spec)
        for b in [manifest, *others]:
            blobs[b.digest] = b.data
        digests[spec.ref] = manifest.digest
        manifests.append({
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest.digest,
            "size": len(manifest.data),
            "annotations": {ANNOTATION_CONTAINERD_NAME: spec.ref,
                            ANNOTATION_REF_NAME: tag_of(spec.ref)},
        })
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": manifests}
    files: list[Entry] = [Entry("oci-layout", data=_canonical({"imageLayoutVersion": "1.0.0"}),
                                mode=0o644),
                          Entry("index.json", data=_canonical(index), mode=0o644)]
    files += [Entry("blobs/sha256/" + d.split(":", 1)[1], data=data, mode=0o644)
              for d, data in sorted(blobs.items())]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(build_layer(files))
    tmp.replace(out)
    return digests
