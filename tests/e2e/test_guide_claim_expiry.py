"""The guide's "Modifying the IP repossession policy": ``--claim-expired-duration`` changed
on the ipamd Deployment (``kubectl -n kube-system edit deployments.v1.apps tke-eni-ipamd``)
releases a static IP that long after its StatefulSet is scaled down.

ipamd runs here as a process started from the Deployment's pod template (no image can
run on this machine; the Deployment is kept at 0 replicas as the record of its
configuration), so "the rollout" is: edit the Deployment object, then restart the
process from the edited object (``Environment.restart_ipamd_from_deployment``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from localrun.environment import IPAMD, Environment
from localrun.kube import wait_for
from localrun.manifests import examples
from localrun.pods import running_pod
from tests.fixtures_env import delete_and_wait, pod_ip

pytestmark = pytest.mark.e2e
DEPLOYMENT = f"/apis/apps/v1/namespaces/kube-system/deployments/{IPAMD}"
CLAIMS = "/apis/networking.tke.cloud.tencent.com/v1/namespaces/default/vpcipclaims"
DURATION = "15s"


def set_duration(env: Environment, value: str) -> list[str]:
    """Edit the Deployment's args as a user would; return the previous args."""
    live = env.kube.get(DEPLOYMENT)
    assert live is not None
    args = list(live["spec"]["template"]["spec"]["containers"][0]["args"])
    new = copy.copy(args)
    new[new.index("--claim-expired-duration") + 1] = value
    env.kube.json_patch(DEPLOYMENT, [{"op": "replace", "value": new,
                                      "path": "/spec/template/spec/containers/0/args"}])
    return args


def restore_args(env: Environment, args: list[str]) -> None:
    env.kube.json_patch(DEPLOYMENT, [{"op": "replace", "value": args,
                                      "path": "/spec/template/spec/containers/0/args"}])


def db_statefulset() -> dict[str, Any]:
    sts = copy.deepcopy(examples()["busybox"])
    sts["metadata"]["name"] = "db"
    sts["spec"]["serviceName"] = "db"
    sts["spec"]["selector"] = {"matchLabels": {"app": "db"}}
    sts["spec"]["template"]["metadata"]["labels"] = {"app": "db"}
    return dict(sts)


def test_claim_expired_duration_on_the_deployment_releases_the_ip_after_scale_down(
        guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    old_args = set_duration(env, DURATION)
    try:
        ipamd = env.restart_ipamd_from_deployment()
        assert f"--claim-expired-duration {DURATION}" in " ".join(ipamd.cmd)
        kube.apply(db_statefulset())
        pod = running_pod(kube, "db-0")
        ip = pod_ip(pod)
        claim = wait_for("claim db-0 holds the IP", lambda: (
            c if (c := kube.get(f"{CLAIMS}/db-0")) and (c.get("status") or {}).get("ip") == ip
            else None), 60)
        assert claim["metadata"].get("finalizers"), claim

        kube.merge_patch("/apis/apps/v1/namespaces/default/statefulsets/db",
                         {"spec": {"replicas": 0}})
        wait_for("db-0 gone", lambda: kube.pod("db-0") is None, 60)
        reserved = wait_for("claim Reserved with an expiry", lambda: (
            c if (c := kube.get(f"{CLAIMS}/db-0")) and (c.get("status") or {}).get("expiresAt")
            else None), 60)
        assert reserved["status"]["ip"] == ip
        # released after the duration: the claim goes, the IP leaves the claim
        wait_for(f"claim db-0 released ({DURATION} after the pod went)",
                 lambda: kube.get(f"{CLAIMS}/db-0") is None, 120, detail=env.logs)
        vip = kube.get(f"/apis/networking.tke.cloud.tencent.com/v1/vpcips/{ip}")
        assert vip is None or not vip["spec"].get("claim"), vip
        released = [e for e in kube.items("/api/v1/namespaces/default/events")
                    if e.get("reason") == "IPReleased" and ip in e.get("message", "")]
        assert released, "no IPReleased event"
    finally:
        restore_args(env, old_args)
        env.restart_ipamd_from_deployment()
        delete_and_wait(env, "/apis/apps/v1/namespaces/default/statefulsets/db", "app=db")
        if kube.get(f"{CLAIMS}/db-0") is not None:
            delete_and_wait(env, f"{CLAIMS}/db-0")
