"""The capacity file never runs ahead of the API (issue 15): the scheduler
extender judges a node's headroom from the VpcIP phases the agent reports to
the API, the device plugin from the agent's capacity file. When a cooldown
ends, the file may show the IP usable again (so the kubelet raises the Node's
allocatable and kube-scheduler retries its pending pods) only once the API
holds the IP ``Free``; otherwise the extender refuses those retries ("no ENI
IP headroom ... cooling down").

The whole agent (Kubernetes IP and pod sources, in a node netns, against the
real kube-apiserver through a TCP proxy that the test can cut) and its
capacity file. With the API cut when the cooldown ends, the status write
fails: the file must keep the IP cooling (never advertise what the API does
not say is usable); once the API is back, the file shows it usable, and at
that moment the API already says ``Free``.

No timed assertions: every wait is a generous bound for the expected value."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from core.capacityfile import parse_capacity_file
from core.names import CONFIGMAP_NAMESPACE, CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, PLURAL_VPC_IP
from core.usable import IpTally
from localcluster.controlplane import ControlPlane
from tests.deploy_support import DEPLOY, create_crds, load_docs, yaml_files
from tests.fixtures_netns import AgentFactory, NetnsSet, NetnsTcpProxy, Vpc, run_plugin
from tests.ipamd_records import create_vpc_eni, create_vpc_ip, mark_eni_attached

COOLDOWN = 15  # s: long enough for the set-up steps between the DEL and the cut
WAIT = 90.0  # a bound that only ends a hung test (the agent's watch backs off up to 30 s)
REPORT_FAILED = "usage report failed"


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with contextlib.closing(control_plane.api_client()) as api_client:
        create_crds(api_client, [d for p in yaml_files(DEPLOY / "crds") for d in load_docs(p)])
        yield api_client


class CuttableProxy(NetnsTcpProxy):
    """``NetnsTcpProxy`` the test can cut: ``cut()`` drops every open
    connection and refuses new ones (accepted, then closed at once) until
    ``restore()``."""

    def __init__(self, netns: str, target: tuple[str, int]) -> None:
        self.open = threading.Event()
        self.open.set()
        super().__init__(netns, target)

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.open.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                conn.close()
                continue
            self._conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def cut(self) -> None:
        self.open.clear()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv
            with contextlib.suppress(OSError):
                conn.close()

    def restore(self) -> None:
        self.open.set()


def test_capacity_file_shows_a_cooldown_end_only_after_the_api_holds_it_free(
    api: client.ApiClient,
    control_plane: ControlPlane,
    vpc: Vpc,
    netns_set: NetnsSet,
    agents: AgentFactory,
    tmp_path: Path,
) -> None:
    crd = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    tag = uuid.uuid4().hex[:8]
    node_name, eni_id, pod_name = f"co-{tag}", f"eni-{tag}", f"web-{tag}"
    net = f"10.{100 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    ips = [f"{net}.10", f"{net}.11"]
    node = vpc.add_node(1, [[f"{net}.2", *ips]])
    capfile = tmp_path / "dp" / "eni-ip-capacity"
    proxy = CuttableProxy.to_apiserver(node.ns, control_plane.server)
    agent = agents(node, start=False, eni_only=False)

    def phase(ip: str) -> str:
        obj = crd.get_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        assert isinstance(obj, dict)
        return str((obj.get("status") or {}).get("phase") or "")

    def file_tally() -> IpTally | None:
        try:
            return parse_capacity_file(capfile.read_text()).tally
        except FileNotFoundError:
            return None

    def until(what: str, cond: Any, poll: float = 0.1) -> None:
        deadline = time.monotonic() + WAIT
        while not cond():
            assert time.monotonic() < deadline, (
                f"{what}; capacity file: {file_tally()}\n{agent.logs()[-4000:]}"
            )
            time.sleep(poll)

    def failures() -> int:
        assert agent.log_path is not None
        return agent.log_path.read_text(errors="replace").count(REPORT_FAILED)

    # no such ConfigMap: no subnet status, so the node cannot grow and the
    # file's usable IPs are exactly its warm ones
    status_ref = f"{CONFIGMAP_NAMESPACE}/no-status-{tag}"
    try:
        create_vpc_eni(crd, eni_id, node_name, "subnet-order")
        mark_eni_attached(
            crd,
            eni_id,
            mac=node.enis[0].mac,
            primary_ip=f"{net}.2",
            subnet_cidr=f"{net}.0/24",
            gateway="10.10.0.1",
        )
        for ip in ips:
            create_vpc_ip(crd, ip, node_name, eni_id, "subnet-order")
        pod = core.create_namespaced_pod(
            "default",
            {  # type: ignore[arg-type]  # the client takes a dict as well
                "metadata": {
                    "name": pod_name,
                    "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"},
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )
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
            "--device-plugin-capacity-file",
            str(capfile),
            "--subnet-status-configmap",
            status_ref,
            "--cooldown",
            str(COOLDOWN),
            "--cooldown-floor",
            str(COOLDOWN),  # no early reuse: the cooldown's end is the one change
        )
        until("both IPs warm in the capacity file", lambda: file_tally() == IpTally(warm=2))
        conf = {"cniVersion": "1.0.0", "name": "tke-route-eni", "type": "tke-route-eni"}
        pod_ns = netns_set.add("co")
        assert pod.metadata is not None
        args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod_name};K8S_POD_UID={pod.metadata.uid}"

        def cycle(container_id: str) -> tuple[str, float]:
            """ADD then DEL one sandbox; returns its IP, cooling down (reported
            ``Cooldown`` in the API and in the file), and the cooldown's end."""
            add = run_plugin(
                agent.plugin,
                "ADD",
                conf,
                container_id=container_id,
                netns=f"/run/netns/{pod_ns}",
                args=args,
                caller_ns=node.ns,
            )
            assert add.rc == 0 and add.out, add.stdout + agent.logs()[-3000:]
            ip = add.out["ips"][0]["address"].split("/")[0]
            until("usage reported", lambda: phase(ip) == "InUse")
            gone = run_plugin(
                agent.plugin,
                "DEL",
                dict(conf, prevResult=add.out),
                container_id=container_id,
                netns=f"/run/netns/{pod_ns}",
                args=args,
                caller_ns=node.ns,
            )
            assert gone.rc == 0, gone.stdout
            until("cooldown reported", lambda: phase(ip) == "Cooldown")
            until("cooling in the file", lambda: file_tally() == IpTally(warm=1, cooling=1))
            ends = agent.settled(lambda s: ip in s.get("cooldown", {}))["cooldown"][ip]
            return ip, float(ends)

        # 1. the API is cut when the cooldown ends: the status write fails,
        # and the file must not show the IP usable while the API says Cooldown
        ip, ends = cycle("k1")
        proxy.cut()
        assert phase(ip) == "Cooldown", "set-up outlasted the cooldown: raise COOLDOWN"
        while time.time() < ends:
            time.sleep(min(0.5, max(0.0, ends - time.time())))
        seen = failures()
        # the reporter tried to write Free and failed, then failed its first
        # retry (1 s later): the cooldown's end has long been processed
        until("two failed status writes after the cooldown's end", lambda: failures() >= seen + 2)
        assert phase(ip) == "Cooldown"  # the API still holds the old phase
        assert file_tally() == IpTally(warm=1, cooling=1), (
            f"the capacity file ({file_tally()}) shows the IP usable while the API still holds "
            "it Cooldown (the extender refuses what the device plugin advertises)\n"
            f"{agent.logs()[-3000:]}"
        )

        # 2. the API is back: the write goes through, then the file rises; at
        # the first sight of the rise the API already holds Free
        proxy.restore()
        until("the IP usable in the file", lambda: file_tally() == IpTally(warm=2), poll=0.005)
        assert phase(ip) == "Free", "the file rose before the API held the IP Free"

        # 3. no fault: the same order on the ordinary path (the rise printed)
        ip, ends = cycle("k2")
        until("the IP usable in the file", lambda: file_tally() == IpTally(warm=2), poll=0.005)
        seen_at = time.time()
        assert phase(ip) == "Free", "the file rose before the API held the IP Free"
        print(f"cooldown end -> capacity file rise: {seen_at - ends:.3f} s (API Free first)")
    finally:
        proxy.close()
        for ip in ips:
            with contextlib.suppress(client.ApiException):
                crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, ip)
        with contextlib.suppress(client.ApiException):
            crd.delete_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, eni_id)
        with contextlib.suppress(client.ApiException):
            core.delete_namespaced_pod(pod_name, "default", grace_period_seconds=0)
