"""The component image the local run's pods run: built from the working tree with
``hack/image/build.sh`` (buildah; every layer cached, so an unchanged tree costs ~10 s)
and served to every local node's containerd by the node's registry."""

from __future__ import annotations

import subprocess
from pathlib import Path

from localrun.manifests import ROOT, ManifestError

BUILD = ROOT / "hack" / "image" / "build.sh"
#: what a pod spec names (docker.io/library/tke-vpc-cni:dev, hack/image/build.sh SERVE_AS)
IMAGE = "tke-vpc-cni:dev"
SETUP_STEP = "hack/setup.sh (step: image)"


def build(log: Path) -> None:
    """Build and export the image (or find it up to date); ManifestError names the log."""
    if not BUILD.exists():
        raise ManifestError(f"{BUILD} missing")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.run([str(BUILD)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ManifestError(f"the component image did not build ({BUILD}, log {log}); "
                            f"set-up: {SETUP_STEP}\n{tail}")
