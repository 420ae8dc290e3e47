"""A real kubelet + containerd node joins the local control plane and runs a pod whose IP
comes from the CNI plugins in the node's conf dir (Debian's ptp + host-local here)."""

from __future__ import annotations

import pytest

from localcluster.controlplane import ControlPlane
from localnode.node import ZONE_LABEL
from tests.fixtures_node import NodeFactory, api, pod_manifest, wait_for, wait_running

pytestmark = pytest.mark.e2e


def test_node_registers_ready_and_runs_a_pod(node_cluster: ControlPlane,
                                             node_factory: NodeFactory) -> None:
    cp = node_cluster
    node = node_factory.make("node-a", "ap-guangzhou-3", cp, node_ip="10.20.0.11/24",
                             pod_subnet="10.244.1.0/24",
                             provider_id="qcloud:///ap-guangzhou-3/ins-nodea001")
    print(f"node-a Ready {node.timings.kubelet_to_ready:.1f}s after kubelet start "
          f"({node.timings})")
    obj = api(cp, "/api/v1/nodes/node-a")
    assert obj is not None
    assert obj["metadata"]["labels"][ZONE_LABEL] == "ap-guangzhou-3"
    assert obj["spec"]["providerID"] == "qcloud:///ap-guangzhou-3/ins-nodea001"
    addresses = {a["type"]: a["address"] for a in obj["status"]["addresses"]}
    assert addresses.get("InternalIP") == "10.20.0.11"

    # the guide's image name; tag latest => pull policy Always => the node's registry mirror
    api(cp, "/api/v1/namespaces/default/pods", "POST",
        pod_manifest("web", image="nginx", node_selector={"kubernetes.io/hostname": "node-a"}))
    pod = wait_running(cp, "web")
    assert pod["spec"]["nodeName"] == "node-a"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["status"]["podIP"].startswith("10.244.1."), pod["status"]

    api(cp, "/api/v1/namespaces/default/pods/web", "DELETE")
    wait_for("pod web deleted by the kubelet",
             lambda: api(cp, "/api/v1/namespaces/default/pods/web") is None)
    with node.cri() as cri:
        wait_for("its sandbox stopped", lambda: not [
            s for s in cri.list_sandboxes()
            if cri.pod_sandbox_status(s).state == cri.pb.SANDBOX_READY] or None)
