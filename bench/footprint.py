"""Per-node footprint: the memory of what the agent DaemonSet runs on a node (the
node agent, which serves the device plugin in its process) with N pods on the node
(default 110, the kubelet's default max pods), beside the reference (aws-node).

    sudo flock /tmp/tke-e2e.lock .venv/bin/python -m bench.footprint [--pods 110]
    sudo .venv/bin/python -m bench.footprint --on netns [--shape separate|combined]

``--on localrun`` (default): the deployed shape, as an operator runs it. A local run
(docs/local-run.md: the image built from the working tree, deploy/ applied through
the local overlay, real nodes with containerd + kubelet) with node-a an
``--instance-type`` instance (its ENI limits hold the pods) whose kubelet has
``--max-pods`` = pods + 20 (localnode's nodes default to 32); a Deployment of
``--pods`` busybox pods with an ENI IP each, pinned to node-a; once they run, the
agent container's processes (the DaemonSet's one container: ``tke-eni-agent
--device-plugin=true``) are measured. Printed: the pods on node-a (the kubelet's
view, ours included) and the pods the agent holds (its checkpoint), node-a's
allocatable eni-ip, RSS/PSS/USS of the container's processes, the load. Minutes
(image build, environment start, pods); run it under the shared e2e lock.

``--on netns``: the two shapes side by side without a cluster's kubelet, containerd
or image. ``--shape separate`` (two processes): ``tke-eni-agent`` and
``tke-eni-device-plugin``; ``--shape combined`` (one): ``tke-eni-agent
--device-plugin=true``.

- the agent in a throw-away "node" netns with one ENI (a veth), its ENIs/IPs and
  pods from a real kube-apiserver (``--sources kubernetes``, as deployed; reached
  through ``localnode.portforward``) or from a file (``--sources file``); ``--pods``
  real CNI ADDs through the installed ``tke-route-eni`` shim, each into a fresh pod
  netns, so the agent holds N pods' state (pool, checkpoint, links);
- the device plugin registered with the kubelet stand-in (``harness.kubelet``,
  real gRPC), its limits from the VPC emulator's DescribeNetworkInterfaceLimit
  (instance type ``--instance-type``), its capacity from the agent's file.

Printed: RSS, PSS and USS per process (``/proc/<pid>/smaps_rollup``) and the
total, the pod count the agent reports, the kubelet's allocatable, the
reference figure and the machine's load. With ``--breakdown`` also what each
heavy import costs in a fresh interpreter (RSS after each import).

RSS counts shared library pages in each process; PSS splits them between the
processes that map them (the fair sum for one node); USS is what stopping the
process would free.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cni_bench import CLONE_NEWNET, DEPLOYED_PYTHON, enter_netns, runtime_netconf, sh

ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 80.0  # issue 17 item 6: agent + device plugin together, 110 pods
LOCALRUN_WORKDIR = Path("/var/lib/tke-e2e")  # as bench.capacity: room for a local run
FILL = "footprint"  # the Deployment that fills the node
AGENT = "tke-eni-agent"  # deploy/'s DaemonSet and its one container
REFERENCE = "aws-node (AWS VPC CNI's node DaemonSet): 42-48 MB RSS (the issue's figure)"
RESOURCE = "tke.cloud.tencent.com/eni-ip"
MB = 1024 * 1024

# The heavy imports of the node processes, in the order a node process meets
# them: what each adds to a fresh interpreter's RSS (docs/node.md "Footprint").
BREAKDOWN = (
    "logging",
    "ssl",
    "prometheus_client",
    "pyroute2",
    "grpc",
    "grpc_health.v1.health",
    "protos.v1beta1.api_pb2_grpc",
    "requests",
    "tencentcloud.common.common_client",
    "tencentcloud.vpc.v20170312.vpc_client",
    "tencentcloud.cvm.v20170312.cvm_client",
    "kubernetes.client",
)


def setns(fd: int) -> None:
    """Back into the netns open at ``fd`` (os.setns is Python >= 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the root netns")


def mem(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private pages) of ``pid`` in MB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                fields[parts[0][:-1]] = int(parts[1]) / 1024
    return {
        "rss": fields.get("Rss", 0.0),
        "pss": fields.get("Pss", 0.0),
        "uss": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
    }


def import_breakdown(modules: Sequence[str]) -> list[tuple[str, float, float]]:
    """(module, RSS after importing it, added) in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        "def rss():\n"
        "    for l in open('/proc/self/status'):\n"
        "        if l.startswith('VmRSS'): return int(l.split()[1]) / 1024\n"
        "out = [('(interpreter)', rss())]\n"
        "for m in sys.argv[1:]:\n"
        "    importlib.import_module(m); out.append((m, rss()))\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *modules], cwd=str(ROOT), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    rows: list[tuple[str, float]] = json.loads(proc.stdout)
    return [(m, r, r - (rows[i - 1][1] if i else 0.0)) for i, (m, r) in enumerate(rows)]


def agent_pods(state_dir: Path) -> int:
    """The pods the agent holds: the allocations in its checkpoint (a log of
    snapshots: the last line is the state)."""
    last = (state_dir / "checkpoint.json").read_text().splitlines()[-1]
    return len(json.loads(last).get("allocations") or [])


def wait_socket(path: Path, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{path} never answered:\n{log.read_text()}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def script(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        raise RuntimeError(f"{name} not installed next to {sys.executable}: run hack/setup.sh")
    return path


def forward_into(netns: str, ports: Sequence[int], log: Path) -> subprocess.Popen[bytes]:
    """TCP from 127.0.0.1:<port> in ``netns`` to 127.0.0.1:<port> of the root netns
    (the API server and the emulator listen on the root's loopback; on a real node the
    agent's hostNetwork reaches them), by the test bed's ``localnode.portforward`` (as
    the local run's nodes reach their API server); returns once it listens."""
    argv = [sys.executable, "-m", "localnode.portforward", "--netns", f"/run/netns/{netns}"]
    for port in ports:
        argv += ["--forward", f"127.0.0.1:{port}=127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=open(log, "wb"))  # noqa: SIM115  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        proc.wait(10)
        raise RuntimeError(f"localnode.portforward did not start:\n{log.read_text()}")
    return proc


def kube_records(api: Any, node: str, pods: int, ips: list[str]) -> dict[str, str]:
    """What ipamd and the scheduler would have made for this node: one attached
    VpcENI, a VpcIP per IP, and the pods (Pending: no kubelet here); returns
    pod name -> uid."""
    from kubernetes import client

    from core.names import (
        CRD_GROUP,
        CRD_VERSION,
        KIND_VPC_ENI,
        KIND_VPC_IP,
        NODE_LABEL,
        PLURAL_VPC_ENI,
        PLURAL_VPC_IP,
    )  # fmt: skip

    crd, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    version = f"{CRD_GROUP}/{CRD_VERSION}"
    labels = {NODE_LABEL: node}
    crd.create_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, {
        "apiVersion": version, "kind": KIND_VPC_ENI,
        "metadata": {"name": "eni-bench", "labels": labels},
        "spec": {"nodeName": node, "subnetId": "subnet-bench"},
    })  # fmt: skip
    crd.patch_cluster_custom_object_status(CRD_GROUP, CRD_VERSION, PLURAL_VPC_ENI, "eni-bench", {
        "status": {"phase": "Attached", "mac": "02:00:00:00:00:01", "primaryIp": "10.40.0.2",
                   "subnetCidr": "10.40.0.0/14", "gateway": "10.40.0.1"}})  # fmt: skip
    for ip in ips:
        crd.create_cluster_custom_object(CRD_GROUP, CRD_VERSION, PLURAL_VPC_IP, {
            "apiVersion": version, "kind": KIND_VPC_IP,
            "metadata": {"name": ip, "labels": labels},
            "spec": {"nodeName": node, "eniId": "eni-bench", "subnetId": "subnet-bench"},
        })  # fmt: skip
    uids = {}
    for i in range(pods):
        pod = core.create_namespaced_pod("default", {
            "metadata": {"name": f"pod{i}"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        })  # fmt: skip
        uids[f"pod{i}"] = pod.metadata.uid
    return uids


def apply_crds(api: Any) -> None:
    import yaml
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api)
    names = []
    for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                ext.create_custom_resource_definition(doc)
                names.append(doc["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if {c.type: c.status for c in conds}.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"CRD {name} not established in 60 s")
            time.sleep(0.2)


def plugin_call(
    shim: str, command: str, conf: dict[str, Any], pod: str, uid: str, netns: str, cni_path: str
) -> None:
    env = {
        "CNI_COMMAND": command, "CNI_CONTAINERID": f"c-{pod}", "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0", "CNI_PATH": cni_path, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"
                    + (f";K8S_POD_UID={uid}" if uid else ""),
    }  # fmt: skip
    proc = subprocess.run([shim], input=json.dumps(conf).encode(), env=env,
                          capture_output=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{command} {pod}: {proc.stdout.decode()} {proc.stderr.decode()}")


def print_table(figures: dict[str, dict[str, float]], alive: dict[str, bool]) -> None:
    print(f"{'process':26}{'RSS MB':>9}{'PSS MB':>9}{'USS MB':>9}")
    for name, f in figures.items():
        note = "" if alive.get(name, True) else "  (EXITED before the measure)"
        print(f"{name:26}{f['rss']:9.1f}{f['pss']:9.1f}{f['uss']:9.1f}{note}")
    total = {k: sum(f[k] for f in figures.values()) for k in ("rss", "pss", "uss")}
    print(f"{'total':26}{total['rss']:9.1f}{total['pss']:9.1f}{total['uss']:9.1f}"
          f"   target RSS <= {TARGET_MB:.0f} MB: "
          f"{'met' if total['rss'] <= TARGET_MB else 'MISSED'}")  # fmt: skip
    print(f"reference: {REFERENCE}")


def eni_deployment(replicas: int, node: str) -> dict[str, Any]:
    """``replicas`` sleepers with an ENI IP each, all on ``node``."""
    container = {
        "name": "main",
        "image": "busybox",
        "command": ["sleep", "1000000"],
        "resources": {"requests": {RESOURCE: "1"}, "limits": {RESOURCE: "1"}},
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": FILL, "namespace": "default"},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": {"app": FILL}},
            "template": {
                "metadata": {"labels": {"app": FILL},
                             "annotations": {"tke.cloud.tencent.com/networks": "tke-route-eni"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 0,
                         "nodeSelector": {"kubernetes.io/hostname": node}},
            },
        },
    }  # fmt: skip


def localrun_main(opts: argparse.Namespace) -> int:
    """The deployed shape on the local run (see the module's docstring)."""
    from localrun import workloads
    from localrun.cloudspec import ZONE3
    from localrun.environment import Environment
    from localrun.nodedaemons import NodeSpec

    node = "node-a"
    workdir = LOCALRUN_WORKDIR / f"bench-footprint-{secrets.token_hex(3)}"
    nodes = (NodeSpec(node, ZONE3, opts.instance_type, max_pods=opts.pods + 20),
             NodeSpec("node-b", ZONE3))  # two: the 2-replica Deployments spread  # fmt: skip
    env = Environment(workdir, prefix="tkf", nodes=nodes, kwok_nodes=0,
                      ipamd_extra_env={"TKE_IPAMD_RECONCILE_INTERVAL": "10s"},
                      progress=lambda line: print(line, flush=True))  # fmt: skip
    t0 = time.monotonic()
    env.start()
    started = time.monotonic() - t0
    try:
        kube = env.kube
        kube.apply(eni_deployment(opts.pods, node))
        t0 = time.monotonic()
        deadline = t0 + opts.timeout
        running: list[dict[str, Any]] = []
        last_print = 0.0
        while True:
            pods = [p for p in kube.pods("default", f"app={FILL}")
                    if not p["metadata"].get("deletionTimestamp")]  # fmt: skip
            running = [p for p in pods if p["status"].get("phase") == "Running"
                       and p["status"].get("podIP")]  # fmt: skip
            now = time.monotonic()
            if len(running) >= opts.pods or now > deadline:
                break
            if now - last_print >= 30:
                print(
                    f"  {len(running)}/{opts.pods} pods Running on {node} after "
                    f"{now - t0:.0f} s (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
                last_print = now
            time.sleep(2)
        fill = time.monotonic() - t0
        time.sleep(opts.settle)
        agent = env.agent_pod(node)
        pids = workloads.container_pids(env.real[node].node, agent, AGENT)
        figures = {f"tke-eni-agent pid {pid}": mem(pid) for pid in pids}
        load = os.getloadavg()
        held = agent_pods(Path(f"/proc/{pids[0]}/root/var/lib/tke-eni-agent"))
        on_node = [p for p in kube.items(f"/api/v1/pods?fieldSelector=spec.nodeName={node}")
                   if p["status"].get("phase") == "Running"]  # fmt: skip
        status = (kube.node(node) or {}).get("status") or {}
        allocatable = (status.get("allocatable") or {}).get(RESOURCE, "?")
        restarts = workloads.restarts(agent, AGENT)
        containers = [c["name"] for c in agent["spec"]["containers"]]
    finally:
        problems = env.stop()
        if not problems:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"environment stop left: {problems} (workdir {workdir} kept)")

    print(f"\nPer-node footprint on the local run (deploy/'s DaemonSet, image built from the "
          f"working tree): environment up in {started:.0f} s; {len(running)}/{opts.pods} ENI "
          f"pods Running on {node} ({opts.instance_type}, kubelet --max-pods "
          f"{opts.pods + 20}) after {fill:.0f} s")  # fmt: skip
    print(
        f"{node}: {len(on_node)} pods Running (the kubelet's count, host-network ones "
        f"included); the agent holds {held} pods; allocatable {RESOURCE} {allocatable}"
    )
    print(f"agent pod {agent['metadata']['name']}: containers {containers}, args "
          f"--device-plugin=true, restarts {restarts}")  # fmt: skip
    print_table(figures, {})
    print(f"load average (1/5/15 min) at the measure: {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    if len(running) < opts.pods:
        print(f"NOT REACHED: {len(running)} of {opts.pods} pods Running within "
              f"{opts.timeout:.0f} s")  # fmt: skip
    if opts.breakdown:
        print_breakdown()
    return 0 if len(running) >= opts.pods and held >= opts.pods else 1


def print_breakdown() -> None:
    print("import cost in a fresh interpreter (RSS MB after each import, added):")
    for module, rss, added in import_breakdown(BREAKDOWN):
        print(f"  {module:42}{rss:7.1f}{added:+7.1f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=110, help="pods on the node (default 110)")
    ap.add_argument(
        "--on",
        choices=("localrun", "netns"),
        default="localrun",
        help="the deployed DaemonSet on a local run (default), or bare processes in a netns",
    )
    ap.add_argument(
        "--shape",
        choices=("separate", "combined"),
        default="combined",
        help="--on netns: two processes, or the device plugin inside the agent (default)",
    )
    ap.add_argument(
        "--sources",
        choices=("kubernetes", "file"),
        default="kubernetes",
        help="--on netns: the agent's ENIs/IPs and pods from a real kube-apiserver as "
        "deployed (default), or from files (no API server)",
    )
    ap.add_argument(
        "--instance-type",
        default="S5.4XLARGE32",
        help="the emulated node's type (its ENI limits must hold --pods)",
    )
    ap.add_argument("--settle", type=float, default=5.0, help="seconds idle before measuring")
    ap.add_argument(
        "--timeout", type=float, default=1200.0, help="--on localrun: seconds for the pods to run"
    )
    ap.add_argument("--breakdown", action="store_true", help="also print the import costs")
    ap.add_argument(
        "--plugin-python",
        default=DEPLOYED_PYTHON if os.access(DEPLOYED_PYTHON, os.X_OK) else sys.executable,
    )
    opts = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    if opts.on == "localrun":
        return localrun_main(opts)
    return netns_main(opts)


def netns_main(opts: argparse.Namespace) -> int:
    """Bare processes in a node netns (see the module's docstring)."""
    from harness.kubelet import KubeletStandin
    from localcluster.controlplane import ControlPlane
    from vpcsim.testing import run_emulator

    tag = f"fp{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="footprint-"))
    plugin_dir = tempfile.mkdtemp(prefix="fp-dp-", dir="/tmp")  # short: unix socket paths
    node = f"{tag}-node"
    node_name = f"footprint-{os.getpid()}"
    pods: list[str] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    forward: subprocess.Popen[bytes] | None = None
    cp: ControlPlane | None = None
    root_fd = os.open("/proc/self/ns/net", os.O_RDONLY)
    ips = [f"10.{40 + i // 250}.{i % 250}.10" for i in range(opts.pods + 10)]
    uids = {f"pod{i}": "" for i in range(opts.pods)}
    try:
        with run_emulator() as emu, KubeletStandin(plugin_dir) as kubelet:
            iid = emu.add_instance("subnet-sim00003", opts.instance_type)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")},
                "TENCENTCLOUD_SECRET_ID": emu.secret_id,
                "TENCENTCLOUD_SECRET_KEY": emu.secret_key,
                "TKE_CLOUD_CREDENTIALS_FILE": "/nonexistent",
                "TKE_ENI_DP_DEVICE_PLUGIN_DIR": plugin_dir,
                "TKE_ENI_DP_METADATA_URL": emu.metadata_url(iid),
                "TKE_ENI_DP_CLOUD_ENDPOINT": emu.url,
                "TKE_ENI_DP_CAPACITY_FILE": str(work / "capacity"),
                "TKE_ENI_DP_METRICS_BIND_ADDRESS": "127.0.0.1:19961",
                "TKE_ENI_DP_LOG_LEVEL": "WARNING",
            }
            ports = [emu.port]
            agent_src = ["--ip-source=file", f"--ip-source-file={work / 'ips.json'}",
                         "--pod-source=none"]  # fmt: skip
            if opts.sources == "kubernetes":
                cp = ControlPlane(work / "cp").start()
                with contextlib.closing(cp.api_client()) as api:
                    apply_crds(api)
                    uids = kube_records(api, node_name, opts.pods, ips)
                ports.append(int(cp.server.rsplit(":", 1)[1]))
                agent_src = [
                    "--ip-source=kubernetes",
                    "--pod-source=kubernetes",
                    f"--kubeconfig={cp.kubeconfig}",
                    f"--node-name={node_name}",
                ]
            else:
                (work / "ips.json").write_text(json.dumps({
                    "enis": [{"id": "eni-bench", "mac": "02:00:00:00:00:01",
                              "subnetCidr": "10.40.0.0/14", "gateway": "10.40.0.1",
                              "primaryIp": "10.40.0.2"}],
                    "ips": [{"ip": ip, "eni": "eni-bench"} for ip in ips],
                }))  # fmt: skip
            if opts.shape == "separate":
                procs["device plugin"] = subprocess.Popen(
                    [script("tke-eni-device-plugin")], env=env, cwd=str(ROOT),
                    stderr=open(work / "dp.log", "wb"),  # noqa: SIM115
                )  # fmt: skip
            sh("ip", "netns", "add", node)
            sh("ip", "-n", node, "link", "set", "lo", "up")
            sh("ip", "-n", node, "link", "add", "eth1", "address", "02:00:00:00:00:01",
               "type", "veth", "peer", "name", "vpc1")  # fmt: skip
            sh("ip", "-n", node, "link", "set", "vpc1", "up")
            # the same 127.0.0.1:<port> addresses inside the node netns
            forward = forward_into(node, ports, work / "portforward.log")
            enter_netns(node)  # the agent runs here, and the shims the bench spawns
            agent_cmd = [
                script("tke-eni-agent"), *agent_src, "--eni-only=true",
                f"--socket={work / 'cni.sock'}", f"--state-dir={work / 'state'}",
                f"--cni-bin-dir={work / 'bin'}", f"--cni-conf-dir={work / 'net.d'}",
                "--health-address=127.0.0.1:19867", "--log-level=WARNING",
                f"--device-plugin-capacity-file={work / 'capacity'}",
                f"--plugin-python={opts.plugin_python}",
            ]  # fmt: skip
            if opts.shape == "combined":
                agent_cmd.append("--device-plugin=true")
            procs["agent"] = subprocess.Popen(
                agent_cmd, env=env, cwd=str(ROOT),
                stderr=open(work / "agent.log", "wb"),  # noqa: SIM115
            )  # fmt: skip
            wait_socket(work / "cni.sock", procs["agent"], work / "agent.log")
            shim = str(work / "bin" / "tke-route-eni")
            path = f"{work / 'bin'}:/usr/lib/cni"
            conf = runtime_netconf(work / "net.d")
            deadline = time.monotonic() + 60
            while True:  # the agent has its ENI (kubernetes: the first list is in)
                status = subprocess.run(
                    [shim],
                    input=json.dumps(dict(conf, cniVersion="1.1.0")).encode(),
                    env={"CNI_COMMAND": "STATUS"},
                    capture_output=True,
                    check=False,
                )
                if status.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"agent never ready: {status.stdout.decode()}")
                time.sleep(0.2)
            for i in range(opts.pods):
                name = f"{tag}-p{i}"
                sh("ip", "netns", "add", name)
                pods.append(name)

            def add(i: int) -> None:
                plugin_call(shim, "ADD", conf, f"pod{i}", uids[f"pod{i}"],
                            f"/run/netns/{pods[i]}", path)  # fmt: skip

            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(add, range(opts.pods)))
            adds = time.monotonic() - t0
            held = agent_pods(work / "state")
            ok = kubelet.wait_for(lambda: kubelet.capacity(RESOURCE) > 0, timeout=60)
            time.sleep(opts.settle)
            figures = {name: mem(p.pid) for name, p in procs.items()}
            alive = {name: p.poll() is None for name, p in procs.items()}
            allocatable = kubelet.allocatable(RESOURCE) if ok else 0
            load = os.getloadavg()
            for i in range(opts.pods):
                plugin_call(shim, "DEL", conf, f"pod{i}", uids[f"pod{i}"],
                            f"/run/netns/{pods[i]}", path)  # fmt: skip
            for name in ("agent", "device plugin"):
                stop(procs.get(name))
    finally:
        setns(root_fd)
        os.close(root_fd)
        for p in procs.values():
            stop(p)
        stop(forward)
        if cp is not None:
            cp.stop()
        for name in pods:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", node], capture_output=True, check=False)
        shutil.rmtree(plugin_dir, ignore_errors=True)
        if not os.environ.get("FOOTPRINT_KEEP"):
            shutil.rmtree(work, ignore_errors=True)

    print(f"Per-node footprint in a netns, shape={opts.shape}, sources={opts.sources}: "
          f"{opts.pods} pods ADDed in {adds:.1f} s; the agent holds {held} pods; kubelet "
          f"{RESOURCE} allocatable {allocatable} ({opts.instance_type})")  # fmt: skip
    print_table(figures, alive)
    print(f"load average (1 min) during the measure: {load[0]:.2f} on {os.cpu_count()} CPUs")
    if opts.breakdown:
        print_breakdown()
    return 0 if all(alive.values()) and held == opts.pods else 1


def _entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
