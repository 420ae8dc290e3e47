"""The guide's "Modifying the IP repossession policy": ``--claim-expired-duration`` changed
with the guide's own command, ``kubectl -n kube-system edit deployments.v1.apps
tke-eni-ipamd`` (the real kubectl, its EDITOR a script that changes the value after
``--claim-expired-duration`` as a user would), rolls ipamd's pods, and the new value
releases a static IP that long after its StatefulSet is scaled down."""

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


EDIT_SCRIPT = r"""#!/bin/sh
# kubectl edit's EDITOR: the value after --claim-expired-duration becomes $NEW_DURATION
set -e
sed -i '/- --claim-expired-duration$/{n;s/- .*/- '"$NEW_DURATION"'/}' "$1"
"""


def set_duration(env: Environment, value: str) -> list[str]:
    """``kubectl -n kube-system edit deployments.v1.apps tke-eni-ipamd`` with an EDITOR that
    sets the duration; return the previous args."""
    live = env.kube.get(DEPLOYMENT)
    assert live is not None
    before = list(live["spec"]["template"]["spec"]["containers"][0]["args"])
    editor = env.workdir / "edit-claim-duration.sh"
    editor.write_text(EDIT_SCRIPT)
    editor.chmod(0o755)
    out = env.kubectl("-n", "kube-system", "edit", "deployments.v1.apps", IPAMD,
                      env={"EDITOR": str(editor), "NEW_DURATION": value})
    print(f"kubectl edit: {out.strip()}")
    after = (env.kube.get(DEPLOYMENT) or {})["spec"]["template"]["spec"]["containers"][0]["args"]
    assert after[after.index("--claim-expired-duration") + 1] == value, after
    return before


def restore_args(env: Environment, args: list[str]) -> None:
    set_duration(env, args[args.index("--claim-expired-duration") + 1])


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
        env.restart_ipamd_from_deployment()  # the rollout of the edited Deployment
        for pod in env.component_pods(IPAMD):
            args = " ".join(pod["spec"]["containers"][0]["args"])
            assert f"--claim-expired-duration {DURATION}" in args, args
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
