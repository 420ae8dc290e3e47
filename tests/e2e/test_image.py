"""The component image for real: ``hack/image/build.sh`` builds the Dockerfile with
buildah on a bookworm base made by debootstrap, exports it where the nodes' registries
serve local images (testbed/localnode/registry.py), and a real node's kubelet pulls it through
its registry mirror and runs it as a pod: every console script starts, the device
plugin's stubs import, the test bed is absent, and the image's own user is non-root
(the pod says ``runAsNonRoot`` without a ``runAsUser``, as deploy/ does for ipamd and
the extender, so the kubelet checks the image's USER)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from localcluster.controlplane import ControlPlane
from localnode.registry import LOCAL_IMAGES_DIR, Layouts
from tests.fixtures_node import NodeFactory, api, pod_manifest, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
POD_IMAGE = "tke-vpc-cni:dev"  # what a manifest would say
SERVED_AS = "docker.io/library/tke-vpc-cni:dev"  # hack/image/build.sh's SERVE_AS
TEST_BED = ("vpcsim", "localcluster", "localnode", "localrun", "harness")  # testbed/'s
TEST_BED_SCRIPTS = {"tke-localcluster", "tke-vpcsim"}


def component_scripts() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    raw = cfg["options.entry_points"]["console_scripts"]
    names = {line.split("=", 1)[0].strip() for line in raw.splitlines() if "=" in line}
    return sorted(names - TEST_BED_SCRIPTS)


@pytest.fixture(scope="module")
def built_image() -> str:
    for tool in ("buildah", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: run hack/setup.sh (step: apt; hack/setup-debian.sh)")
    t0 = time.monotonic()
    proc = subprocess.run([str(REPO / "hack/image/build.sh")], cwd=REPO, capture_output=True,
                          text=True, timeout=1800, check=False)
    print(proc.stdout, proc.stderr, f"hack/image/build.sh: {time.monotonic() - t0:.0f} s")
    assert proc.returncode == 0, (
        f"hack/image/build.sh failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    layouts = Layouts.scan(LOCAL_IMAGES_DIR)
    assert SERVED_AS in layouts.refs, (
        f"{SERVED_AS} not among the local images {sorted(layouts.refs)} in {LOCAL_IMAGES_DIR}")
    return SERVED_AS


def pod_script() -> str:
    scripts = " ".join(component_scripts())
    not_there = " ".join(TEST_BED)
    return "\n".join([
        "set -eu",
        'test "$(id -u)" = 65534 || { echo "uid $(id -u), want 65534"; exit 11; }',
        f'for s in {scripts}; do "$s" --help > /dev/null || {{ echo "$s --help"; exit 12; }}; done',
        "python -c 'import device_plugin.cli, protos.v1beta1.api_pb2_grpc' || exit 13",
        f"for m in {not_there}; do",
        "  python -c \"import importlib.util, sys; sys.exit(importlib.util.find_spec('$m') "
        "is not None)\" || { echo \"test bed $m in the image\"; exit 14; }",
        "done",
        *[f"! command -v {s} || exit 15" for s in sorted(TEST_BED_SCRIPTS)],
    ])


def terminated(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    pod = api(cp, f"/api/v1/namespaces/default/pods/{name}")
    if not pod or pod["status"].get("phase") not in ("Succeeded", "Failed"):
        return None
    return pod


def test_a_real_node_pulls_and_runs_the_image(built_image: str, node_cluster: ControlPlane,
                                               node_factory: NodeFactory) -> None:
    cp = node_cluster
    node = node_factory.make("node-img", "ap-guangzhou-3", cp, node_ip="10.20.0.31/24",
                             pod_subnet="10.244.31.0/24")
    manifest = pod_manifest("image-check", image=POD_IMAGE, command=["sh", "-c", pod_script()],
                            node_selector={"kubernetes.io/hostname": "node-img"})
    container = manifest["spec"]["containers"][0]
    container["imagePullPolicy"] = "Always"  # through the node's registry, not a leftover
    manifest["spec"]["restartPolicy"] = "Never"
    manifest["spec"]["securityContext"] = {"runAsNonRoot": True}  # the image's USER decides
    t0 = time.monotonic()
    api(cp, "/api/v1/namespaces/default/pods", "POST", manifest)
    pod = wait_for("pod image-check to finish", lambda: terminated(cp, "image-check"), 300)
    status = pod["status"]["containerStatuses"][0]
    print(f"pod image-check {pod['status']['phase']} {time.monotonic() - t0:.1f} s after "
          f"creation; image {status.get('imageID')}")
    assert pod["status"]["phase"] == "Succeeded", (
        f"the image's checks failed (exit codes: 11 uid, 12 a --help, 13 stubs, 14/15 test "
        f"bed): {status.get('state')}")
    assert status["imageID"].startswith(f"{SERVED_AS.rsplit(':', 1)[0]}@sha256:"), status
    assert node.containerd is not None
    assert SERVED_AS in node.containerd.image_refs()
    api(cp, "/api/v1/namespaces/default/pods/image-check", "DELETE")
