"""README's troubleshooting table, run as written: every backquoted ``kubectl ...`` command of
the table's "run" column, placeholders filled in from a live situation (a pod Pending in the
zone without a subnet, a real node and its agent pod, a StatefulSet pod's kept IP), through
sh with the cluster's kubectl (``kubectl logs``/``exec`` go apiserver -> kubelet). Each must
exit 0 and show what the row says to look for."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from localcluster.binaries import bin_dir
from localrun.cloudspec import ZONE5
from localrun.environment import ZONE_LABEL, Environment
from localrun.kube import wait_for
from localrun.manifests import ROOT, examples
from localrun.pods import ENI_IP, NETWORKS_ANNOTATION, running_pod
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e
README = ROOT / "README.md"


def table_commands(readme: Path = README) -> list[str]:
    """The ``kubectl`` commands of the troubleshooting table, in order."""
    text = readme.read_text()
    section = text.split("Troubleshooting (", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    commands = [c for row in rows for c in re.findall(r"`(kubectl [^`]+)`", row.split("|")[2])]
    assert len(commands) >= 10, commands
    return commands


def pending_pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ts-pending", "namespace": "default",
                         "annotations": {NETWORKS_ANNOTATION: "tke-route-eni"}},
            "spec": {"nodeSelector": {ZONE_LABEL: ZONE5}, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "100000"],
                                     "resources": {"requests": {ENI_IP: "1"},
                                                   "limits": {ENI_IP: "1"}}}]}}


def kept_ip_statefulset() -> dict[str, Any]:
    sts = copy.deepcopy(examples()["busybox"])
    sts["metadata"]["name"] = "ts-db"
    sts["spec"]["serviceName"] = "ts-db"
    sts["spec"]["selector"] = {"matchLabels": {"app": "ts-db"}}
    sts["spec"]["template"]["metadata"]["labels"] = {"app": "ts-db"}
    return dict(sts)


#: what each command's output must show (by a part of the command as written)
EXPECT = {
    "--field-selector spec.nodeName": "tke-eni-agent-",
    "describe pod <pod>": "has no subnet",
    "tke-eni-ipamd-status": "subnet-",
    "get vip -l": "10.0.",
    "get events": "ts-pending",
    "logs <agent-pod>": "registered with the kubelet",  # the plugin logs in the agent's process
    "describe node <node>": "tke.cloud.tencent.com/eni-ip",
    "logs <agent-pod> -c tke-eni-agent": "starting tke-eni-agent",
    "exec <agent-pod> -c tke-eni-agent": "0",
    "get lease tke-eni-ipamd": "tke-eni-ipamd",
    "logs deployment/tke-eni-ipamd": "tke-eni-ipamd",
    "get vipc -A": "ts-db-0",
    "delete vipc <sts-pod>": "deleted",
}


def test_readme_troubleshooting_commands_run_as_written(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    assert env.cp is not None
    kube.request("/api/v1/namespaces/default/pods", "POST", pending_pod())
    kube.apply(kept_ip_statefulset())
    sts = "/apis/apps/v1/namespaces/default/statefulsets/ts-db"
    try:
        running_pod(kube, "ts-db-0")
        kube.merge_patch(sts, {"spec": {"replicas": 0}})
        wait_for("ts-db-0 gone, its claim kept", lambda: kube.pod("ts-db-0") is None and kube.get(
            "/apis/networking.tke.cloud.tencent.com/v1/namespaces/default/vpcipclaims/ts-db-0"),
            90)
        wait_for("ts-pending refused by the scheduler", lambda: [
            e for e in kube.items("/api/v1/namespaces/default/events")
            if e["involvedObject"].get("name") == "ts-pending"
            and e.get("reason") == "FailedScheduling"], 60)
        values = {"<node>": "node-a", "<pod>": "ts-pending", "<sts-pod>": "ts-db-0",
                  "<ns>": "default", "<agent-pod>": env.agent_pod("node-a")["metadata"]["name"]}
        for written in table_commands():
            command = written
            for key, value in values.items():
                command = command.replace(key, value)
            assert "<" not in command, f"unfilled placeholder in {written!r}"
            proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                                  timeout=60, check=False,
                                  env={"PATH": f"{bin_dir()}:/usr/bin:/bin",
                                       "HOME": str(env.workdir),  # kubectl's cache
                                       "KUBECONFIG": str(env.cp.kubeconfig)})
            out = proc.stdout + proc.stderr
            print(f"$ {command}  -> exit {proc.returncode}, {len(out.splitlines())} lines")
            assert proc.returncode == 0, f"{command}: {out}"
            wants = [w for key, w in EXPECT.items() if key in written]
            assert wants, f"no expectation for {command!r}: add one to EXPECT"
            assert all(w in out for w in wants), f"{command}: want {wants} in:\n{out[-2000:]}"
    finally:
        delete_and_wait(env, "/api/v1/namespaces/default/pods/ts-pending")
        delete_and_wait(env, sts, "app=ts-db")
        claim = "/apis/networking.tke.cloud.tencent.com/v1/namespaces/default/vpcipclaims/ts-db-0"
        if kube.get(claim) is not None:
            delete_and_wait(env, claim)
