"""An unreadable checkpoint, with the agent fed by the real kube-apiserver:
the running pod keeps its network and its VpcIP stays InUse under its pod's
name (taken from the status the API holds, checked against the veth name),
and the node's Events say what happened (CheckpointUnreadable, then
PodStateRebuilt)."""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from kubernetes import client

from core.names import CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from localcluster.controlplane import ControlPlane
from tests.fixtures_netns import AgentFactory, NetnsSet, NetnsTcpProxy, Vpc, run_plugin, sh
from tests.integration.test_agent_kube import api  # noqa: F401 - fixture
from tests.ipamd_records import create_vpc_eni, create_vpc_ip, mark_eni_attached

CONF = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}


def test_unreadable_checkpoint_in_kubernetes_mode(
    api: client.ApiClient,  # noqa: F811 - the fixture
    control_plane: ControlPlane,
    vpc: Vpc,
    netns_set: NetnsSet,
    agents: AgentFactory,
) -> None:
    crd = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:8]
    node_name, eni_id = f"rk-{tag}", f"eni-{tag}"
    net = f"10.{200 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    ips = [f"{net}.10", f"{net}.11"]
    node = vpc.add_node(1, [[f"{net}.2", *ips]])
    proxy = NetnsTcpProxy.to_apiserver(node.ns, control_plane.server)
    try:
        create_vpc_eni(crd, eni_id, node_name, "subnet-r")
        mark_eni_attached(
            crd,
            eni_id,
            mac=node.enis[0].mac,
            primary_ip=f"{net}.2",
            subnet_cidr=f"{net}.0/24",
            gateway="10.10.0.1",
        )
        for ip in ips:
            create_vpc_ip(crd, ip, node_name, eni_id, "subnet-r")
        agent = agents(node, start=False)
        kubeconfig = proxy.kubeconfig(control_plane.kubeconfig, agent.workdir / "kubeconfig")
        flags = (
            "--ip-source",
            "kubernetes",
            "--pod-source",
            "none",
            "--kubeconfig",
            str(kubeconfig),
            "--node-name",
            node_name,
        )
        agent.start(*flags)

        def until(what: str, cond: Any) -> None:
            deadline = time.monotonic() + 30
            while not cond():
                assert time.monotonic() < deadline, f"{what}\n{agent.logs()[-3000:]}"
                time.sleep(0.2)

        def vip_status(ip: str) -> dict[str, Any]:
            obj = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
            return dict(obj.get("status") or {})

        def reasons() -> list[str]:
            events = core.list_namespaced_event(
                "default", field_selector=f"involvedObject.name={node_name}"
            )
            return [e.reason for e in events.items]

        pod_ns = netns_set.add("kr")
        args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
        until(
            "the agent sees its ENI",
            lambda: (
                run_plugin(agent.plugin, "STATUS", dict(CONF, cniVersion="1.1.0"), ifname="").rc
                == 0
            ),
        )
        add = run_plugin(
            agent.plugin,
            "ADD",
            CONF,
            container_id="k1",
            netns=f"/run/netns/{pod_ns}",
            args=args,
            caller_ns=node.ns,
        )
        assert add.rc == 0 and add.out, add.stdout + agent.logs()[-3000:]
        ip = add.out["ips"][0]["address"].split("/")[0]
        until("usage reported", lambda: vip_status(ip).get("podName") == "web")

        agent.kill()
        (agent.workdir / "state" / "checkpoint.json").write_bytes(b"\x00garbage\n")
        agent.start(*flags)
        sh("ping", "-c1", "-W5", node.ip, ns=pod_ns)
        until("CheckpointUnreadable event", lambda: "CheckpointUnreadable" in reasons())
        until("PodStateRebuilt event", lambda: "PodStateRebuilt" in reasons())
        # the periodic full report keeps the pod's IP InUse under its name
        time.sleep(2.5)  # a few report passes
        status = vip_status(ip)
        assert (status.get("phase"), status.get("podName")) == ("InUse", "web"), status
        other = run_plugin(
            agent.plugin,
            "ADD",
            CONF,
            container_id="k2",
            netns=f"/run/netns/{netns_set.add('kq')}",
            args="K8S_POD_NAMESPACE=default;K8S_POD_NAME=q",
            caller_ns=node.ns,
        )
        assert other.rc == 0 and other.out, other.stdout
        assert other.out["ips"][0]["address"] != add.out["ips"][0]["address"]
    finally:
        proxy.close()
        for ip in ips:
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni_id)
