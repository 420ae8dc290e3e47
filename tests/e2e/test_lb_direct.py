"""The guide's "direct connection between LBs and pods" on the local run: an L4 load
balancer stand-in on the VPC fabric (localrun.lbsim) with the pods' VPC IPs as backends,
taken from the Service's EndpointSlices, keeps serving through a rolling update of those
pods (readiness probe, ``maxUnavailable: 0``, a ``preStop`` delay): continuous requests,
none failed, the backends follow the Endpoints, and the pods see the client's own
address. The NodePort path (LB → node → kube-proxy → pod) is shown beside it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from localrun.environment import Environment
from localrun.kube import wait_for
from localrun.lbclient import echo_deployment, echo_service
from localrun.lbsim import CLIENT_ADDRESS, VIP, Backend, LoadBalancer
from localrun.pods import running_pods
from tests.fixtures_env import delete_and_wait, pod_ip

pytestmark = pytest.mark.e2e
NAME = "lb-roll"
DIRECT, NODEPORT = 80, 8080
REPLICAS = 3


def _client(lb: LoadBalancer, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        lb.client_argv([sys.executable, "-m", "localrun.lbclient", "--host", VIP,
                        "--port", str(port), *extra]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _summary(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = [ln for ln in out.splitlines() if ln.startswith("{") and "requests" in ln]
    assert proc.returncode == 0 and lines, f"lbclient exited {proc.returncode}: {err}\n{out}"
    return dict(json.loads(lines[-1]))


def _ready_ips(kube: Any) -> set[Backend]:
    return {Backend(pod_ip(p), 80) for p in kube.pods(selector=f"app={NAME}")
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions") or [])}


def test_lb_straight_to_pods_through_a_rolling_update(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    lb = LoadBalancer(env.prefix, env.fabric)
    rolling: subprocess.Popen[str] | None = None
    kube.apply(echo_service(NAME))
    kube.apply(echo_deployment(NAME, REPLICAS, sorted(env.real)))
    try:
        lb.up()
        old = running_pods(kube, f"app={NAME}", REPLICAS, timeout=240)
        svc = kube.get(f"/api/v1/namespaces/default/services/{NAME}") or {}
        node_port = int(svc["spec"]["ports"][0]["nodePort"])
        node_ips = {rn.private_ip for rn in env.real.values()}
        lb.watch_service(DIRECT, kube, "default", NAME)
        lb.set_backends(NODEPORT, [Backend(a, node_port) for a in node_ips])
        old_ips = {Backend(pod_ip(p), 80) for p in old}
        wait_for("the LB's backends = the ready pods", lambda: (
            set(lb.backends(DIRECT)) == old_ips == _ready_ips(kube)), timeout=120,
            detail=lambda: f"LB {lb.backends(DIRECT)}, ready {_ready_ips(kube)}")

        # which address the pods see, on each path
        lb.wait_answering(NODEPORT)  # every node's kube-proxy has the NodePort
        direct, nodeport = lb.probe(DIRECT, 10), lb.probe(NODEPORT, 10)
        print(f"\ndirect: pods saw {direct['peers']} (the client is {CLIENT_ADDRESS}); "
              f"NodePort: pods saw {nodeport['peers']} (node IPs {sorted(node_ips)})")
        assert direct["failed"] == 0 and direct["peers"] == {CLIENT_ADDRESS: 10}, direct
        assert nodeport["failed"] == 0 and nodeport["ok"] == 10, nodeport
        assert CLIENT_ADDRESS not in nodeport["peers"], nodeport  # kube-proxy's masquerade

        # continuous requests through the direct path while the backends roll
        rolling = _client(lb, DIRECT, "--workers", "2", "--seconds", "400")
        assert rolling.stdout is not None and '"started"' in rolling.stdout.readline()
        time.sleep(2)  # some traffic on the old pods first
        changes_before = len([h for h in lb.history if h[1] == DIRECT])
        env.kubectl("rollout", "restart", f"deployment/{NAME}")
        env.kubectl("rollout", "status", f"deployment/{NAME}", "--timeout=300s", timeout=320)
        old_uids = {p["metadata"]["uid"] for p in old}
        new = wait_for("only new pods left", lambda: (
            [p for p in running_pods(kube, f"app={NAME}", REPLICAS, timeout=240)
             if p["metadata"]["uid"] not in old_uids] or None), timeout=240)
        assert len(new) == REPLICAS
        new_ips = {Backend(pod_ip(p), 80) for p in new}
        wait_for("the LB's backends = the new pods", lambda: set(lb.backends(DIRECT)) == new_ips,
                 timeout=120, detail=lambda: f"LB {lb.backends(DIRECT)}, want {new_ips}")
        time.sleep(2)  # traffic on the new set alone
        rolling.send_signal(signal.SIGTERM)
        got = _summary(rolling)
        rolling = None
        changes = [h for h in lb.history if h[1] == DIRECT][changes_before:]
        print(f"rolling update: {got['ok']} ok / {got['requests']} requests in "
              f"{got['seconds']} s, {got['failed']} failed, p50 {got['p50_ms']} ms "
              f"p99 {got['p99_ms']} ms; pods answered {got['pods']}; "
              f"LB backend changes: {[[str(b) for b in h[2]] for h in changes]}")
        assert got["failed"] == 0, got["failures"]
        assert got["peers"] == {CLIENT_ADDRESS: got["ok"]}, got["peers"]
        old_names = {p["metadata"]["name"] for p in old}
        new_names = {p["metadata"]["name"] for p in new}
        assert old_names & set(got["pods"]), f"no old pod answered: {got['pods']}"
        assert new_names <= set(got["pods"]), f"a new pod never answered: {got['pods']}"
        assert len(changes) >= 2, changes  # followed the Endpoints, not just the end state
        assert not lb.apply_errors, lb.apply_errors
    finally:
        if rolling is not None:
            rolling.kill()
            rolling.communicate(timeout=30)
        problems = lb.down()
        delete_and_wait(env, f"/apis/apps/v1/namespaces/default/deployments/{NAME}",
                        f"app={NAME}")
        delete_and_wait(env, f"/api/v1/namespaces/default/services/{NAME}")
        assert not problems, problems
