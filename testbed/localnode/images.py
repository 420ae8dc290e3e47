"""The node's local images, built from Debian's busybox-static (no registry, no docker).

- ``docker.io/library/busybox:latest``: busybox with every applet linked, command ``sh``.
- ``docker.io/library/nginx:latest``: a LOCAL STAND-IN for nginx: busybox ``httpd``
  serving ``/usr/share/nginx/html`` on port 80 (the guide's Deployment says ``nginx``).
- ``registry.k8s.io/pause:3.10``: the sandbox ("pause") image the containerd config
  names; a shell that sleeps and exits on TERM/INT.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localnode.oci import Entry, ImageSpec, write_archive

BUSYBOX_BINARY = Path(os.environ.get("TKE_NODE_BUSYBOX", "/bin/busybox"))
BUSYBOX_REF = "docker.io/library/busybox:latest"
NGINX_REF = "docker.io/library/nginx:latest"
PAUSE_REF = "registry.k8s.io/pause:3.10"
PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"
NGINX_INDEX = (b"<html><body><h1>Welcome to nginx!</h1>"
               b"<p>local stand-in: busybox httpd (tke-vpc-cni localnode)</p></body></html>\n")


class ImageBuildError(RuntimeError):
    """The images cannot be built (busybox-static missing or not static)."""


@dataclass(frozen=True)
class ImageSet:
    archive: Path
    digests: dict[str, str]  # ref -> manifest digest


def busybox_entries(binary: Path = BUSYBOX_BINARY) -> list[Entry]:
    """busybox at /bin/busybox, every applet as a symlink to it, and a minimal /etc."""
    if not binary.is_file():
        raise ImageBuildError(
            f"{binary} not found: install Debian's busybox-static "
            "(run hack/setup.sh (step: apt))")
    try:
        out = subprocess.run([str(binary), "--list-full"], check=True, capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ImageBuildError(f"cannot list applets of {binary}: {exc}") from exc
    entries = [Entry("bin/busybox", source=binary)]
    for applet in sorted(set(out.split())):
        if applet != "bin/busybox" and "/" in applet:
            entries.append(Entry(applet, kind="symlink", target="/bin/busybox"))
    entries += [
        Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                                 b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
              mode=0o644),
        Entry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n", mode=0o644),
        Entry("tmp", kind="dir", mode=0o1777),
        Entry("root", kind="dir", mode=0o700),
        Entry("proc", kind="dir"), Entry("sys", kind="dir"), Entry("dev", kind="dir"),
    ]
    return entries


def image_specs(binary: Path = BUSYBOX_BINARY) -> list[ImageSpec]:
    base = busybox_entries(binary)
    return [
        ImageSpec(BUSYBOX_REF, base, cmd=["sh"]),
        ImageSpec(
            NGINX_REF,
            [*base, Entry("usr/share/nginx/html/index.html", data=NGINX_INDEX, mode=0o644)],
            cmd=["httpd", "-f", "-v", "-p", "80", "-h", "/usr/share/nginx/html"],
            exposed_ports=["80/tcp"],
            labels={"org.opencontainers.image.description":
                    "local stand-in for nginx: busybox httpd on port 80"},
        ),
        ImageSpec(PAUSE_REF, base, entrypoint=["/bin/sh", "-c", PAUSE_SCRIPT]),
    ]


def build_images(cache_dir: Path, binary: Path = BUSYBOX_BINARY) -> ImageSet:
    """Write the archive once per busybox build (keyed by its sha256) and return it."""
    key = hashlib.sha256(binary.read_bytes()).hexdigest()[:16] if binary.is_file() else "none"
    specs = image_specs(binary)
    archive = cache_dir / f"localnode-images-{key}.tar"
    digests = write_archive(specs, archive)
    return ImageSet(archive, digests)
