"""deploy/ installed on a real control plane, as far as this machine allows: no
container image can be built or run here, so the programs run as processes
started FROM THE MANIFESTS — the argv and environment the kubelet would give
each container (tests.deploy_support.container_process), authenticated with
their own ServiceAccounts' tokens (so their RBAC is the one in deploy/).

- everything kustomize builds from deploy/ is created for real (knob values as
  shipped: the guide's VPC and subnets, which the emulated cloud is made of);
- kube-scheduler runs with deploy/'s KubeSchedulerConfiguration (only the
  extender's address changed to where its process listens);
- ipamd (Deployment tke-eni-ipamd) and the extender (Deployment
  tke-eni-ip-scheduler) run as processes against the cloud emulator and the
  apiserver; two kwok nodes in the two zones stand in for the kubelets;
- the admission webhook (add-pod-eni-ip-limit-webhook) is installed by its certs
  Job's command and its Deployment's container, as processes (localrun.webhook;
  the configuration calls the process on loopback instead of the Service);
- the guide's examples (nginx Deployment, busybox StatefulSet, from
  deploy/examples/) get their pods scheduled through the extender, a pod without
  the eni-ip request gets it from the webhook and is scheduled the same way, and
  the static pod gets its VpcIPClaim with an IP of its node's zone.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client
from kubernetes.dynamic import DynamicClient

from core.names import CRD_GROUP, CRD_VERSION, NODE_LABEL, PLURAL_VPC_ENI, PLURAL_VPC_IP_CLAIM
from localcluster.controlplane import ControlPlane
from localcluster.extender_pki import make_extender_pki
from localcluster.fakenodes import FakeNode
from localcluster.ports import free_ports
from localrun.kube import Kube
from localrun.manifests import set_container_arg
from localrun.webhook import LocalWebhook
from tests.deploy_support import (
    DEPLOY,
    DOWNWARD,
    VENV_BIN,
    apply,
    container_process,
    containers,
    create_crds,
    find,
    kustomize_build,
    load_docs,
    yaml_files,
)
from tests.fixtures_controlplane import ControlPlaneFactory
from vpcsim.testing import EmulatorHandle, run_emulator

pytestmark = pytest.mark.e2e
T = TypeVar("T")

ZONE3, ZONE4 = "ap-guangzhou-3", "ap-guangzhou-4"
NODES = {"e2e-node-3": ("ins-e2e00003", ZONE3), "e2e-node-4": ("ins-e2e00004", ZONE4)}
ENI_IP = "tke.cloud.tencent.com/eni-ip"
#: downward-API values of our processes: they listen on loopback
POD_FIELDS = {**DOWNWARD, "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}


def cloud_spec(objs: list[dict[str, Any]]) -> dict[str, Any]:
    """An emulated VPC made of the knob values the build ships (the guide's example
    VPC and subnets: first subnet in zone 3, second in zone 4)."""
    data = find(objs, "ConfigMap", "tke-eni-ipamd")["data"]
    pod3, pod4 = data["TKE_ENI_IPAMD_SUBNET_ID"].split(":")
    return {
        "region": "ap-guangzhou",
        "vpcs": [
            {
                "id": data["TKE_ENI_IPAMD_VPC_ID"],
                "name": "tke-e2e",
                "cidr": "10.0.0.0/16",
                "subnets": [
                    {
                        "id": "subnet-node0003",
                        "name": "node-3",
                        "cidr": "10.0.3.0/24",
                        "zone": ZONE3,
                    },
                    {
                        "id": "subnet-node0004",
                        "name": "node-4",
                        "cidr": "10.0.4.0/24",
                        "zone": ZONE4,
                    },
                    {"id": pod3, "name": "pod-3", "cidr": "10.0.32.0/20", "zone": ZONE3},
                    {"id": pod4, "name": "pod-4", "cidr": "10.0.48.0/20", "zone": ZONE4},
                ],
                "instances": [
                    {"id": "ins-e2e00003", "type": "S5.LARGE8", "subnet": "node-3"},
                    {"id": "ins-e2e00004", "type": "S5.LARGE8", "subnet": "node-4"},
                ],
            }
        ],
    }


def wait_for(what: str, fn: Callable[[], T | None], timeout: float, logs: Callable[[], str]) -> T:
    """A bound on a wait (not a timing assertion); the failure shows the process logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{logs()}", pytrace=False)


def sa_kubeconfig(cp: ControlPlane, api: client.ApiClient, sa: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount kube-system/<sa> (TokenRequest)."""
    req = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    token = client.CoreV1Api(api).create_namespaced_service_account_token(sa, "kube-system", req)
    admin = yaml.safe_load(Path(cp.kubeconfig).read_text())
    cluster = admin["clusters"][0]["cluster"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": sa,
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": sa, "user": {"token": token.status.token}}],
                "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa}}],
            }
        )
    )
    return path


class Program:
    """One container's program as a process: argv/env from its manifest, plus overrides
    for what a pod would get from the cluster (in-cluster config → kubeconfig, ports)."""

    def __init__(
        self,
        objs: list[dict[str, Any]],
        kind: str,
        name: str,
        log: Path,
        extra_argv: list[str],
        extra_env: dict[str, str],
    ) -> None:
        obj = find(objs, kind, name)
        (self.container,) = containers(obj)
        argv, env = container_process(objs, obj, self.container, POD_FIELDS)
        self.argv = [str(VENV_BIN / self.container["command"][0]), *argv, *extra_argv]
        self.env = {**os.environ, **env, **extra_env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Program:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=out, start_new_session=True
            )
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.log.name} (argv {self.argv[1:]}) ---\n" + "\n".join(
            text.splitlines()[-25:]
        )


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with run_emulator(cloud_spec(kustomize_build(DEPLOY))) as emu:
        yield emu


def pod_from(template_owner: dict[str, Any], name: str) -> dict[str, Any]:
    """The pod a workload controller would create (no controller-manager runs here)."""
    template = copy.deepcopy(template_owner["spec"]["template"])
    meta = template["metadata"]
    meta["name"] = name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}


def test_deploy_on_a_control_plane(
    tmp_path: Path, control_plane_factory: ControlPlaneFactory, emulator: EmulatorHandle
) -> None:
    objs = kustomize_build(DEPLOY)
    # knob 3 set as an operator must (ipamd refuses deploy/'s placeholder cluster id)
    set_container_arg(find(objs, "Deployment", "tke-eni-ipamd"), "--clusterid", "cls-e2etest1")
    port, health_port = free_ports(2)
    pki = make_extender_pki(tmp_path / "extender-pki")
    sched = copy.deepcopy(
        next(
            d
            for p in yaml_files()
            for d in load_docs(p)
            if d.get("kind") == "KubeSchedulerConfiguration"
        )
    )
    sched.pop("clientConnection", None)
    for ext in sched["extenders"]:
        ext["urlPrefix"] = f"https://127.0.0.1:{port}"  # the process below, not the Service
        ext["tlsConfig"] = pki.tls_config()  # local files for the operator's certificates
    nodes = [
        FakeNode(
            name,
            allocatable={ENI_IP: "27"},
            labels={
                "topology.kubernetes.io/zone": zone,
                "node.kubernetes.io/instance-type": "S5.LARGE8",
                "tke.cloud.tencent.com/instance-id": ins,
            },
        )
        for name, (ins, zone) in NODES.items()
    ]
    cp = control_plane_factory(with_scheduler=True, scheduler_config=sched, kwok_nodes=nodes)

    with contextlib.closing(cp.api_client()) as api:
        create_crds(api, objs)
        dyn = DynamicClient(api)
        for obj in objs + [d for p in yaml_files(DEPLOY / "examples") for d in load_docs(p)]:
            # the webhook configuration goes in through localrun.webhook (on loopback)
            if obj["kind"] not in ("CustomResourceDefinition", "MutatingWebhookConfiguration"):
                apply(dyn, obj, dry_run=False)  # for real: no controller turns them into pods

        creds = {
            "TENCENTCLOUD_SECRET_ID": emulator.secret_id,  # what the optional Secret holds
            "TENCENTCLOUD_SECRET_KEY": emulator.secret_key,
        }
        ipamd = Program(
            objs,
            "Deployment",
            "tke-eni-ipamd",
            tmp_path / "ipamd.log",
            [
                "--kubeconfig",
                str(sa_kubeconfig(cp, api, "tke-eni-ipamd", tmp_path / "ipamd.kc")),
                "--cloud-endpoint",
                emulator.endpoint,
                "--cloud-protocol",
                "http",
                "--metrics-address",
                "127.0.0.1:0",
                "--health-address",
                "127.0.0.1:0",
            ],
            creds,
        )
        extender = Program(
            objs,
            "Deployment",
            "tke-eni-ip-scheduler",
            tmp_path / "extender.log",
            [
                "--kubeconfig",
                str(sa_kubeconfig(cp, api, "tke-eni-ip-scheduler", tmp_path / "extender.kc")),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--health-port",
                str(health_port),
                *pki.extender_args(),
            ],
            {},
        )

        webhook = LocalWebhook(objs, Kube(cp.kubeconfig, cp.server), tmp_path, *free_ports(2),
                               credentials=lambda sa: sa_kubeconfig(cp, api, sa,
                                                                    tmp_path / f"{sa}.kc"))

        def logs() -> str:
            hook = webhook.daemon.log_tail() if webhook.daemon else ""
            return "\n".join([ipamd.tail(), extender.tail(), hook, cp.logs()])

        try:
            ipamd.start()
            extender.start()
            webhook.up()
            custom = client.CustomObjectsApi(api)
            core = client.CoreV1Api(api)

            def attached(node: str) -> bool:
                items = custom.list_cluster_custom_object(
                    CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, label_selector=f"{NODE_LABEL}={node}"
                )["items"]
                return any((i.get("status") or {}).get("phase") == "Attached" for i in items)

            for node in NODES:
                wait_for(f"ipamd attaches an ENI to {node}", lambda n=node: attached(n), 120, logs)

            def ready() -> bool:
                with contextlib.suppress(OSError):
                    url = f"http://127.0.0.1:{health_port}/readyz"
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        return bool(resp.status == 200)
                return False

            wait_for("the extender is ready", ready, 60, logs)

            deployment = find(
                load_docs(DEPLOY / "examples" / "nginx-deployment.yaml"), "Deployment", "nginx"
            )
            sts_docs = load_docs(DEPLOY / "examples" / "busybox-statefulset.yaml")
            sts = find(sts_docs, "StatefulSet", "busybox")
            sts_uid = client.AppsV1Api(api).read_namespaced_stateful_set("busybox", "default")
            static = pod_from(sts, "busybox-0")
            static["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": "busybox",
                    "uid": sts_uid.metadata.uid,
                    "controller": True,
                }
            ]
            bare = pod_from(deployment, "nginx-bare")  # the guide's pod without its request
            del bare["spec"]["containers"][0]["resources"]
            for pod in (pod_from(deployment, "nginx-e2e"), static, bare):
                core.create_namespaced_pod("default", pod)

            def bound(name: str) -> str | None:
                return str(core.read_namespaced_pod(name, "default").spec.node_name or "")

            for name in ("nginx-e2e", "busybox-0", "nginx-bare"):
                wait_for(f"{name} scheduled", lambda n=name: bound(n), 120, logs)
            added = core.read_namespaced_pod("nginx-bare", "default").spec.containers[0].resources
            assert added.requests == {ENI_IP: "1"} and added.limits == {ENI_IP: "1"}, added

            with urllib.request.urlopen(
                f"http://127.0.0.1:{health_port}/metrics", timeout=5
            ) as resp:
                metrics = resp.read().decode()
            assert 'tke_eni_extender_requests_total{code="200",verb="filter"}' in metrics, (
                "kube-scheduler never asked the extender\n" + logs()
            )

            node = bound("busybox-0")

            def claim_ip() -> dict[str, Any] | None:
                with contextlib.suppress(client.ApiException):
                    got = custom.get_namespaced_custom_object(
                        CRD_GROUP, CRD_VERSION, "default", PLURAL_VPC_IP_CLAIM, "busybox-0"
                    )
                    status = got.get("status") or {}
                    return got if status.get("ip") and status.get("zone") else None
                return None

            claim = wait_for("the VpcIPClaim of busybox-0 with an IP", claim_ip, 120, logs)
            assert claim["status"]["zone"] == NODES[node][1], (claim, node)
            print(
                f"busybox-0 on {node}: static IP {claim['status']['ip']} "
                f"({claim['status'].get('subnetId')}, {claim['status']['zone']})"
            )
        finally:
            webhook.stop()
            extender.stop()
            ipamd.stop()
