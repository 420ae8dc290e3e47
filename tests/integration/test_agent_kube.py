"""The agent's Kubernetes ports against the real kube-apiserver: this node's
VpcENI/VpcIP by label (list + watch), usage written to VpcIP.status, pod
lookups with a cache; and the whole agent in a node netns fed from the API
(the apiserver listens on the root netns' loopback: a small TCP proxy
carries the agent's connections out of its netns)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from cni.agent.ipsource import IpUsage, NodeIpView
from cni.agent.pods import PodLookupError
from cni.agent.sources.kube_ipsource import KubeNodeIpSource
from cni.agent.sources.kube_pods import KubePodSource
from core.ids import IPv4
from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from kit.kubelite import KubeLite, from_kubeconfig
from localcluster.controlplane import ControlPlane
from tests.fixtures_netns import AgentFactory, NetnsSet, NetnsTcpProxy, Vpc, run_plugin, sh
from tests.ipamd_records import create_vpc_eni, create_vpc_ip, mark_eni_attached

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def apply_crds(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                names.append(doc["metadata"]["name"])
                try:
                    ext.create_custom_resource_definition(doc)
                except client.ApiException as exc:
                    if exc.status != 409:  # another test created it: fine
                        raise
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = ext.read_custom_resource_definition(name)
            if {c.type: c.status for c in crd.status.conditions or []}.get("Established") == "True":
                break
            assert time.monotonic() < deadline, f"CRD {name} not established"
            time.sleep(0.2)


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api_client:
        apply_crds(api_client)
        yield api_client


@pytest.fixture
def lite(api: client.ApiClient, control_plane: ControlPlane) -> Iterator[KubeLite]:
    """The node processes' client (kit.kubelite) on the admin kubeconfig."""
    kube = from_kubeconfig(str(control_plane.kubeconfig))
    try:
        yield kube
    finally:
        kube.close()


def wait_view(src: KubeNodeIpSource, cond: Any, what: str) -> NodeIpView:
    view = src.view()
    deadline = time.monotonic() + 30
    while not cond(view):
        assert time.monotonic() < deadline, f"{what}: view is {view}"
        view = src.wait_for_change(view.generation, 1.0)
    return view


def test_node_ip_source_watch_and_report(api: client.ApiClient, lite: KubeLite) -> None:
    crd = client.CustomObjectsApi(api)
    node = f"node-{uuid.uuid4().hex[:8]}"
    other = f"other-{uuid.uuid4().hex[:8]}"
    eni = f"eni-{uuid.uuid4().hex[:8]}"
    ips = [f"10.{77 + int(uuid.uuid4().int % 100)}.0.{i}" for i in (10, 11, 12)]
    create_vpc_eni(crd, eni, node, "subnet-a")
    for ip, owner in zip(ips, [node, node, other], strict=True):
        create_vpc_ip(crd, ip, owner, eni, "subnet-a")
    src = KubeNodeIpSource(lite, node)
    src.start()
    try:
        # the ENI counts once ipamd reports it attached (with its MAC and gateway)
        view = wait_view(src, lambda v: len(v.ips) == 2, "node's IPs listed")
        assert not view.enis
        mark_eni_attached(
            crd,
            eni,
            mac="02:00:00:00:aa:01",
            primary_ip="10.77.0.2",
            subnet_cidr="10.77.0.0/24",
            gateway="10.77.0.1",
        )
        view = wait_view(src, lambda v: len(v.enis) == 1, "attached ENI seen")
        assert view.enis[0].mac == "02:00:00:00:aa:01" and view.enis[0].gateway == "10.77.0.1"
        assert sorted(i.ip for i in view.ips) == sorted(ips[:2])  # not the other node's
        assert all(i.state == "Assigned" and i.eni_id == eni for i in view.ips)

        src.report([IpUsage(IPv4(ips[0]), "InUse", "default", "web", "uid-1", "cid-1")])
        got = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ips[0])["status"]
        assert (got["phase"], got["podName"], got["podUid"], got["containerId"]) == (
            "InUse",
            "web",
            "uid-1",
            "cid-1",
        )
        src.report([IpUsage(IPv4(ips[0]), "Cooldown", cooldown_until=time.time() + 150)])
        got = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ips[0])["status"]
        assert (
            got["phase"] == "Cooldown"
            and "podName" not in got
            and got["cooldownUntil"].endswith("Z")
        )
        src.report([IpUsage(IPv4("10.255.255.254"), "Free")])  # deleted by ipamd meanwhile: ignored

        # ipamd asks one back; then takes the other away
        crd.patch_cluster_custom_object(
            CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ips[1], {"spec": {"state": "Releasing"}}
        )
        wait_view(
            src,
            lambda v: any(i.ip == ips[1] and i.state == "Releasing" for i in v.ips),
            "release request seen",
        )
        crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ips[0])
        wait_view(src, lambda v: [i.ip for i in v.ips] == [ips[1]], "deleted IP gone")
    finally:
        src.stop()
        for ip in ips:
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni)


def test_pod_source(api: client.ApiClient, lite: KubeLite) -> None:
    core = client.CoreV1Api(api)
    name = f"web-{uuid.uuid4().hex[:6]}"
    annotations = {"tke.cloud.tencent.com/networks": "tke-route-eni"}
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    try:
        pods = KubePodSource(lite)
        pod = pods.get("default", name)
        assert pod is not None and pod.annotations == annotations and pod.uid
        assert pods.get("default", "no-such-pod") is None
        dead = KubeLite("https://127.0.0.1:1")  # nothing listens: the lookup says so
        with pytest.raises(PodLookupError):
            KubePodSource(dead).get("default", name)
    finally:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_agent_in_kubernetes_mode(
    api: client.ApiClient,
    control_plane: ControlPlane,
    vpc: Vpc,
    netns_set: NetnsSet,
    agents: AgentFactory,
) -> None:
    """The whole agent in a node netns, fed by VpcENI/VpcIP and pods from the
    real apiserver: ADD/DEL through the plugin show up in VpcIP.status, and
    ipamd's release request is answered."""
    crd = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:8]
    node_name, eni_id = f"kn-{tag}", f"eni-{tag}"
    net = f"10.{200 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    ips = [f"{net}.{i}" for i in (10, 11, 12)]
    node = vpc.add_node(1, [[f"{net}.2", *ips]])
    annotated = {"tke.cloud.tencent.com/networks": "tke-route-eni"}
    pods = {f"web-{tag}": annotated, f"plain-{tag}": {}}
    proxy = NetnsTcpProxy.to_apiserver(node.ns, control_plane.server)
    try:
        create_vpc_eni(crd, eni_id, node_name, "subnet-k")
        mark_eni_attached(
            crd,
            eni_id,
            mac=node.enis[0].mac,
            primary_ip=f"{net}.2",
            subnet_cidr=f"{net}.0/24",
            gateway="10.10.0.1",
        )
        for ip in ips:
            create_vpc_ip(crd, ip, node_name, eni_id, "subnet-k")
        uids = {}
        for name, ann in pods.items():
            pod = core.create_namespaced_pod(
                "default",
                {
                    "metadata": {"name": name, "annotations": ann},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            )
            uids[name] = pod.metadata.uid
        agent = agents(node, start=False, eni_only=False)
        kubeconfig = proxy.kubeconfig(control_plane.kubeconfig, agent.workdir / "kubeconfig")
        agent.start(
            "--ip-source",
            "kubernetes",
            "--pod-source",
            "kubernetes",
            "--kubeconfig",
            str(kubeconfig),
            "--node-name",
            node_name,
        )

        def vip_status(ip: str) -> dict[str, Any]:
            obj = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
            return obj.get("status") or {}

        def until(what: str, cond: Any) -> None:
            deadline = time.monotonic() + 30
            while not cond():
                assert time.monotonic() < deadline, f"{what}\n{agent.logs()[-3000:]}"
                time.sleep(0.2)

        web = f"web-{tag}"
        pod_ns = netns_set.add("kw")
        args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={web};K8S_POD_UID={uids[web]}"
        conf = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
        until(
            "the agent sees its ENI",
            lambda: (
                run_plugin(agent.plugin, "STATUS", dict(conf, cniVersion="1.1.0"), ifname="").rc
                == 0
            ),
        )
        add = run_plugin(
            agent.plugin,
            "ADD",
            conf,
            container_id="k1",
            netns=f"/run/netns/{pod_ns}",
            args=args,
            caller_ns=node.ns,
        )
        assert add.rc == 0 and add.out, add.stdout + agent.logs()[-3000:]
        ip = add.out["ips"][0]["address"].split("/")[0]
        assert ip in ips
        sh("ping", "-c1", "-W5", node.ip, ns=pod_ns)
        until("usage reported", lambda: vip_status(ip).get("phase") == "InUse")
        status = vip_status(ip)
        assert (status["podName"], status["podUid"], status["containerId"]) == (
            web,
            uids[web],
            "k1",
        )

        plain = run_plugin(
            agent.plugin,
            "ADD",
            conf,
            container_id="k2",
            netns=f"/run/netns/{pod_ns}",
            args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=plain-{tag}",
            caller_ns=node.ns,
        )
        assert plain.rc != 0 and plain.out and plain.out["code"] == 7, plain.stdout

        gone = run_plugin(
            agent.plugin,
            "DEL",
            dict(conf, prevResult=add.out),
            container_id="k1",
            netns=f"/run/netns/{pod_ns}",
            args=args,
            caller_ns=node.ns,
        )
        assert gone.rc == 0
        until("cooldown reported", lambda: vip_status(ip).get("phase") == "Cooldown")
        assert "podName" not in vip_status(ip)

        free = next(i for i in ips if i != ip)
        until("free IP reported", lambda: vip_status(free).get("phase") == "Free")
        crd.patch_cluster_custom_object(
            CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, free, {"spec": {"state": "Releasing"}}
        )
        until("release granted", lambda: vip_status(free).get("phase") == "Released")
    finally:
        proxy.close()
        for ip in ips:
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni_id)
        for name in pods:
            with contextlib.suppress(client.ApiException):
                core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
