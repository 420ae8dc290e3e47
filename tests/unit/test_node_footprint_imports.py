"""The node processes stay small (docs/node.md, "Footprint"): what the agent
DaemonSet runs — the agent with its Kubernetes sources and the device plugin in
its process, the device plugin's cloud adapter — never loads the heavy
libraries it does not need. Checked in a fresh interpreter by the modules it
holds after building each piece as the start-up does (no timing, no RSS
figure: the import list is what moves the RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# each costs MBs of RSS per process (bench.footprint --breakdown)
HEAVY = (
    "kubernetes",  # generated client models + urllib3/dateutil: ~18 MB
    "tencentcloud.vpc.v20170312.models",  # the SDK's generated models: ~13 MB
    "tencentcloud.cvm.v20170312.models",  # ~4 MB
    "pydantic",
    "flask",
)

PROGRAM = r"""
import json, os, sys, tempfile
d = tempfile.mkdtemp()
kubeconfig = os.path.join(d, "kubeconfig")
with open(kubeconfig, "w") as fh:
    fh.write('''
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
''')
os.environ.update({
    "TKE_ENI_DP_DEVICE_PLUGIN_DIR": d, "TKE_ENI_DP_METRICS_BIND_ADDRESS": "",
    "TKE_ENI_DP_LIMITS_SOURCE": "api", "TKE_ENI_DP_EIP": "true",
})

import cni.agent.cli  # the console script's module
from cni.agent import devplugin
from cni.agent.sources.kube_events import NodeEvents
from cni.agent.sources.kube_ipsource import KubeNodeIpSource, load_kube_config
from cni.agent.sources.kube_node import wait_pod_cidr
from cni.agent.sources.kube_pods import KubePodSource
from cni.agent.sources.kube_subnets import KubeSubnetStatusWatch
from device_plugin.cloudlink import make_cloud
from device_plugin.identity import NodeIdentity
from device_plugin.settings import load

api = load_kube_config(kubeconfig)
KubeNodeIpSource(api, "n1"); KubePodSource(api); NodeEvents(api, "n1")
KubeSubnetStatusWatch(api, "kube-system", "s")
plugin = devplugin.embedded()  # the device plugin in the agent's process
make_cloud(NodeIdentity("ins-1", "S5.LARGE8", "ap-guangzhou-3", "ap-guangzhou"), load([]), None)
print(json.dumps(sorted(sys.modules)))
"""


def test_node_processes_do_not_load_heavy_libraries() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=str(ROOT), capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not loaded, f"the node processes load {loaded[:10]} (docs/node.md, Footprint)"
    # what they do need is there: the proof the program built what the node runs
    for needed in ("grpc", "pyroute2", "kit.kubelite", "tencentcloud.common.common_client"):
        assert needed in modules, needed
