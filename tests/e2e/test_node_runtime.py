"""The runtime half of a real node, without a kubelet: per-node containerd in its own
netns runs CRI sandboxes whose IPs come from the CNI plugins in the node's conf dir."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from localnode import cgroups, netns
from localnode.images import BUSYBOX_REF, NGINX_REF, PAUSE_REF
from localnode.mounts import mounts_under
from localnode.proc import ProcessError, pids_with_arg, run
from tests.fixtures_node import NodeFactory

pytestmark = pytest.mark.e2e


def _pod(node_cri, name: str, cgroup_root: str):  # type: ignore[no-untyped-def]
    uid = str(uuid.uuid4())
    cfg = node_cri.sandbox_config(name, "default", uid, cgroup_parent=f"{cgroup_root}/pod{uid}")
    return cfg, node_cri.run_pod_sandbox(cfg)


def test_two_nodes_run_sandboxes_with_cni_ips_and_clean_up(node_factory: NodeFactory) -> None:
    a = node_factory.make("node-a", "ap-guangzhou-3", with_kubelet=False,
                          node_ip="10.20.0.11/24", pod_subnet="10.244.1.0/24")
    b = node_factory.make("node-b", "ap-guangzhou-4", with_kubelet=False,
                          node_ip="10.20.0.12/24", pod_subnet="10.244.2.0/24")
    seen = {}
    for node, prefix in ((a, "10.244.1."), (b, "10.244.2.")):
        assert node.containerd is not None
        assert {BUSYBOX_REF, NGINX_REF, PAUSE_REF} <= set(node.containerd.image_refs())
        with node.cri() as cri:
            # what the kubelet does for `image: nginx` (pull policy Always): the node's
            # registry mirror resolves it locally
            assert cri.pull_image("nginx").startswith("sha256:")
            cfg, sid = _pod(cri, "web", node.cgroup_root)
            ip = cri.pod_sandbox_status(sid).network.ip
            assert ip.startswith(prefix), f"{node.name}: sandbox IP {ip!r} not from its CNI"
            seen[node.name] = ip
            web = cri.create_container(sid, cfg, "web", NGINX_REF, [])
            cri.start_container(web)
            sh = cri.create_container(sid, cfg, "sh", BUSYBOX_REF, ["sleep", "3600"])
            cri.start_container(sh)
            code, out = cri.exec_sync(sh, ["ip", "-4", "addr", "show", "eth0"])
            assert code == 0 and f"inet {ip}/" in out, out
            # the host side of ptp is in the node's netns: the node reaches its pod
            page = ""
            for _ in range(50):
                try:
                    page = run(["/bin/busybox", "wget", "-q", "-O", "-", f"http://{ip}/"],
                               netns=node.netns_path, timeout=5)
                    break
                except ProcessError:  # httpd may still be starting
                    time.sleep(0.1)
            assert "Welcome to nginx!" in page
            assert cgroups.pids_in(node.cgroup_root), "pod processes not in the node's cgroups"
    # each node's routes live in its own namespace
    assert seen["node-a"] in netns.ip(a.netns_name, "route")
    assert seen["node-a"] not in netns.ip(b.netns_name, "route")

    sock_a = str(a.containerd_paths.socket)
    problems = a.stop()
    assert problems == []
    assert not netns.exists(a.netns_name)
    assert mounts_under(Path(a.workdir)) == []
    assert pids_with_arg(sock_a) == []
    assert not cgroups.pids_in(a.cgroup_root)
    assert netns.exists(b.netns_name), "stopping node-a must not touch node-b"
