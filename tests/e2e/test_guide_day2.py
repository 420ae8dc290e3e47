"""Day-2 operations on the real kubectl, against our components running as pods of deploy/:

- ``kubectl -n kube-system rollout restart ds/tke-eni-agent`` and a DaemonSet image change
  keep running pods' networking (a ping across nodes runs through each rollout; the lost
  packets are printed) and every pod keeps its IP;
- the guide's command for deleting the ipamd pod, run exactly as written, and the working
  equivalent README gives;
- the ipamd leader's pod deleted: the other replica leads within the Lease duration and
  pods keep starting."""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import pytest

from localcluster.binaries import bin_dir
from localrun.environment import AGENT, IPAMD, Environment
from localrun.kube import wait_for
from localrun.pods import plain_pod, running_pod
from localrun.workloads import pods_of
from tests.fixtures_env import delete_and_wait, pod_ip

pytestmark = pytest.mark.e2e
GUIDE_DELETE_IPAMD = ("kubectl -nkube-system get po -ocustom-columns=Name:.metadata.name "
                      "| grep ipamd | kubectl -nkube-system delete po")
WORKING_DELETE_IPAMD = ("kubectl -n kube-system get po -o name | grep ipamd "
                        "| xargs kubectl -n kube-system delete")
LEASE_DURATION_S = 15.0  # ipamd's --leader-elect-lease-duration default
TERMINATION_GRACE_S = 30.0  # deploy/ipamd: terminationGracePeriodSeconds
RETRY_PERIOD_S = 2.0  # ipamd's --leader-elect-retry-period default: a candidate's poll
SIGTERM_SLACK_S = 5.0  # the apiserver -> kubelet -> runtime path that delivers SIGTERM


def shell(env: Environment, command: str) -> subprocess.CompletedProcess[str]:
    """``command`` through sh, with the cluster's kubectl first on PATH and its kubeconfig."""
    assert env.cp is not None
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120,
                          check=False, env={"PATH": f"{bin_dir()}:/usr/bin:/bin",
                                            "HOME": str(env.workdir),
                                            "KUBECONFIG": str(env.cp.kubeconfig)})


class Ping:
    """A ping running inside a pod (busybox, detached), stopped and read later."""

    def __init__(self, env: Environment, pod: str, target: str) -> None:
        self.env, self.pod = env, pod
        env.kubectl("exec", pod, "--", "sh", "-c",
                    f"ping -i 0.2 {target} > /tmp/ping.log 2>&1 & echo $! > /tmp/ping.pid")

    def stop(self) -> tuple[int, int]:
        out = self.env.kubectl("exec", self.pod, "--", "sh", "-c",
                               "kill -INT $(cat /tmp/ping.pid); sleep 1; tail -3 /tmp/ping.log")
        m = re.search(r"(\d+) packets transmitted, (\d+) packets received", out)
        assert m, out
        return int(m.group(1)), int(m.group(2))


def ips_of(env: Environment, names: list[str]) -> dict[str, str]:
    return {n: pod_ip(env.kube.pod(n) or {}) for n in names}


def vpcip_user(env: Environment, ip: str) -> str:
    vip = env.kube.get(f"/apis/networking.tke.cloud.tencent.com/v1/vpcips/{ip}") or {}
    st = vip.get("status") or {}
    return f"{st.get('phase')}:{st.get('podName')}"


def rollout(env: Environment, *args: str) -> float:
    t0 = time.monotonic()
    env.kubectl("-n", "kube-system", *args)
    env.kubectl("-n", "kube-system", "rollout", "status", f"ds/{AGENT}", "--timeout=300s",
                timeout=320)
    return time.monotonic() - t0


def test_agent_rollouts_keep_running_pods_networking_and_ips(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    names = ["d2-client", "d2-server"]
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("d2-client", node_name="node-a", eni=True))
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("d2-server", node_name="node-c", eni=True, image="nginx"))
    original_image = ""
    try:
        for n in names:
            running_pod(kube, n)
        before = ips_of(env, names)
        agents_before = {p["metadata"]["uid"] for p in pods_of(kube, AGENT)}
        original_image = pods_of(kube, AGENT)[0]["spec"]["containers"][0]["image"]

        ping = Ping(env, "d2-client", before["d2-server"])
        took = rollout(env, "rollout", "restart", f"ds/{AGENT}")
        sent, got = ping.stop()
        print(f"rollout restart ds/{AGENT}: {took:.1f}s; ping node-a -> node-c every 0.2 s "
              f"during it: {sent} sent, {got} received, {sent - got} lost")
        assert not agents_before & {p["metadata"]["uid"] for p in pods_of(kube, AGENT)}
        assert got > 0 and ips_of(env, names) == before

        # an image change: the same image by digest (a new reference: a new template)
        status = pods_of(kube, AGENT)[0]["status"]["containerStatuses"]
        digest = next(s["imageID"] for s in status).split("@", 1)[1]
        new_image = f"tke-vpc-cni@{digest}"
        ping = Ping(env, "d2-client", before["d2-server"])
        took = rollout(env, "set", "image", f"ds/{AGENT}", f"{AGENT}={new_image}")
        sent, got = ping.stop()
        print(f"set image ds/{AGENT} {new_image}: {took:.1f}s; ping during it: {sent} sent, "
              f"{got} received, {sent - got} lost")
        for p in pods_of(kube, AGENT):
            assert {c["image"] for c in p["spec"]["containers"]} == {new_image}
        assert got > 0 and ips_of(env, names) == before
        for n, ip in before.items():
            assert vpcip_user(env, ip) == f"InUse:{n}", (n, ip, vpcip_user(env, ip))
        code, out = env.kubectl_run("exec", "d2-client", "--", "ping", "-c", "3", "-W", "2",
                                    before["d2-server"])
        assert code == 0, out
    finally:
        if original_image:
            rollout(env, "set", "image", f"ds/{AGENT}", f"{AGENT}={original_image}")
        for n in names:
            delete_and_wait(env, f"/api/v1/namespaces/default/pods/{n}")


def ipamd_uids(env: Environment) -> set[str]:
    return {p["metadata"]["uid"] for p in pods_of(env.kube, IPAMD)}


def test_the_guides_delete_command_deletes_nothing_and_the_working_one_does(
        guide_env: Environment) -> None:
    env = guide_env
    before = ipamd_uids(env)
    guide = shell(env, GUIDE_DELETE_IPAMD)
    print(f"as written: exit {guide.returncode}: {guide.stderr.strip()}")
    assert guide.returncode != 0
    assert "no name was specified" in guide.stderr, guide.stderr
    assert ipamd_uids(env) == before, "the guide's command deleted a pod after all"

    working = shell(env, WORKING_DELETE_IPAMD)
    print(f"working equivalent: exit {working.returncode}: {working.stdout.strip()}")
    assert working.returncode == 0, working.stderr
    assert working.stdout.count("deleted") == 2, working.stdout
    env.restart_ipamd_from_deployment()  # replaced pods Ready, a leader again
    assert not ipamd_uids(env) & before


def test_ipamd_leader_deleted_the_other_replica_leads_and_pods_keep_starting(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    env.restart_ipamd_from_deployment()
    leader = env.ipamd_leader()
    standby = [p["metadata"]["name"] for p in pods_of(kube, IPAMD)
               if p["metadata"]["name"] != leader]
    assert leader and standby, (leader, standby)
    t0 = time.monotonic()
    env.kubectl("-n", "kube-system", "delete", "pod", leader, "--wait=false")
    # bound: the old leader renews no more from its SIGTERM on, so the Lease is free within
    # its duration even if it is left to expire (workers that do not stop); a candidate
    # notices within a retry period. The pod's grace period is not part of the bound.
    # Who leads: the standby, or the deleted pod's replacement if it is up first.
    new = wait_for("another ipamd pod leads", lambda: (
        h if (h := env.ipamd_leader()) and h != leader else None),
        LEASE_DURATION_S + RETRY_PERIOD_S + SIGTERM_SLACK_S, detail=lambda: env.kubectl(
            "-n", "kube-system", "get", "lease", IPAMD, "-o", "yaml", check=False))
    took = time.monotonic() - t0
    who = "the standby" if new in standby else "its replacement"
    print(f"leader {leader} deleted: {new} ({who}) leads after {took:.1f}s "
          f"(Lease duration {LEASE_DURATION_S:.0f}s, grace {TERMINATION_GRACE_S:.0f}s)")
    kube.request("/api/v1/namespaces/default/pods", "POST",
                 plain_pod("after-failover", node_name="node-b", eni=True))
    try:
        pod: dict[str, Any] = running_pod(kube, "after-failover")
        assert pod_ip(pod)
    finally:
        delete_and_wait(env, "/api/v1/namespaces/default/pods/after-failover")
    env.restart_ipamd_from_deployment()
