"""Pod EIPs on the local run, end to end: a StatefulSet pod annotated
``tke.cloud.tencent.com/eip-attributes`` with ``eip-claim-delete-policy: Never`` gets an
EIP from ipamd (the webhook added ``tke.cloud.tencent.com/eip`` to its requests, the
device plugin advertises it), a host on the "internet" beside the VPC fabric reaches
the pod through that EIP and the pod sees the host's own address; the pod deleted, its
replacement answers on the same EIP. A pod without ``Never`` has its EIP released with
it."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from core.eip import (
    ANNOTATION_EIP_ATTRIBUTES,
    ANNOTATION_EIP_CLAIM_DELETE_POLICY,
    ANNOTATION_EIP_ID,
    ANNOTATION_EIP_PUBLIC_IP,
    RESOURCE_EIP,
)
from localnode.proc import ns_argv
from localrun.eipfabric import CLIENT_ADDRESS, internet_netns
from localrun.environment import Environment
from localrun.kube import wait_for
from localrun.lbclient import PATH, echo_deployment
from localrun.pods import running_pod
from tests.fixtures_env import delete_and_wait

pytestmark = pytest.mark.e2e
STS, ONCE = "eip-web", "eip-once"
ATTRIBUTES = '{"Bandwidth":"10","ISP":"BGP"}'


def _template(name: str, never: bool) -> dict[str, Any]:
    """The echo server's pod template (busybox httpd answering ``peer=<REMOTE_ADDR>``)
    with the EIP annotations."""
    tpl: dict[str, Any] = echo_deployment(name, 1, [])["spec"]["template"]
    tpl["spec"].pop("affinity", None)
    tpl["spec"]["containers"][0].pop("lifecycle", None)
    tpl["spec"]["terminationGracePeriodSeconds"] = 1
    ann = tpl["metadata"]["annotations"]
    ann[ANNOTATION_EIP_ATTRIBUTES] = ATTRIBUTES
    if never:
        ann[ANNOTATION_EIP_CLAIM_DELETE_POLICY] = "Never"
    return tpl


def _statefulset() -> dict[str, Any]:
    tpl = _template(STS, never=True)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": STS, "namespace": "default"},
            "spec": {"replicas": 1, "serviceName": STS,
                     "selector": {"matchLabels": tpl["metadata"]["labels"]},
                     "template": tpl}}


def _pod() -> dict[str, Any]:
    tpl = _template(ONCE, never=False)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": ONCE, "namespace": "default", **tpl["metadata"]},
            "spec": tpl["spec"]}


def _eip_of(env: Environment, name: str, uid_not: str = "") -> tuple[dict[str, Any], str]:
    """The running pod ``name`` and the EIP ipamd annotated it with."""
    pod = running_pod(env.kube, name, uid_not=uid_not, timeout=240)
    uid = pod["metadata"]["uid"]

    def annotated() -> tuple[dict[str, Any], str] | None:
        p = env.kube.pod(name)
        if not p or p["metadata"]["uid"] != uid:
            return None
        pub = (p["metadata"].get("annotations") or {}).get(ANNOTATION_EIP_PUBLIC_IP)
        return (p, pub) if pub else None
    got: tuple[dict[str, Any], str] = wait_for(
        f"ipamd annotates {name} with its EIP", annotated, timeout=120,
        detail=lambda: env.kubectl("describe", "pod", name, check=False))
    return got


def _curl(env: Environment, url: str) -> str:
    """The echo's answer from the internet host, its peer as plain IPv4 (busybox httpd
    names an IPv4 peer in its v4-mapped form ``[::ffff:a.b.c.d]``)."""
    r = subprocess.run(ns_argv(["curl", "-s", "--max-time", "3", url],
                               netns=internet_netns(env.fabric)),
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return f"curl exit {r.returncode}"
    return r.stdout.strip().replace("[::ffff:", "").replace("]", "")


def _answers(env: Environment, public_ip: str) -> str:
    """What the pod answers on its EIP from the internet host (once the fabric has it)."""
    got: str = wait_for(f"the pod answers on its EIP {public_ip}", lambda: (
        out if (out := _curl(env, f"http://{public_ip}{PATH}")).startswith("peer=") else None),
        timeout=60, detail=lambda: _curl(env, f"http://{public_ip}{PATH}"))
    return got


def _eip_record(env: Environment, public_ip: str) -> dict[str, Any] | None:
    assert env.plumber is not None
    for e in (env.plumber.read_state().get("eips") or {}).get("addresses", []):
        if e.get("address_ip") == public_ip:
            return dict(e)
    return None


def test_pod_eip_reachable_kept_with_never_released_without(guide_env: Environment) -> None:
    env, kube = guide_env, guide_env.kube
    kube.apply(_statefulset())
    try:
        pod, public_ip = _eip_of(env, f"{STS}-0")
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits.get(RESOURCE_EIP) == "1", limits  # the webhook's request
        peer = _answers(env, public_ip)
        print(f"\n{STS}-0 ({pod['status']['podIP']}) on EIP {public_ip}: {peer}")
        assert f"peer={CLIENT_ADDRESS} " in peer + " ", peer  # the client's own address
        eip_id = pod["metadata"]["annotations"][ANNOTATION_EIP_ID]

        kube.request(f"/api/v1/namespaces/default/pods/{STS}-0", "DELETE")
        again, public_again = _eip_of(env, f"{STS}-0", uid_not=pod["metadata"]["uid"])
        print(f"recreated {STS}-0 ({again['status']['podIP']}): EIP {public_again}")
        assert public_again == public_ip
        assert again["metadata"]["annotations"][ANNOTATION_EIP_ID] == eip_id
        assert f"peer={CLIENT_ADDRESS} " in _answers(env, public_ip) + " "
    finally:
        delete_and_wait(env, f"/apis/apps/v1/namespaces/default/statefulsets/{STS}",
                        pods_selector=f"app={STS}")

    kube.apply(_pod())
    try:
        _, once_ip = _eip_of(env, ONCE)
        _answers(env, once_ip)
    finally:
        delete_and_wait(env, f"/api/v1/namespaces/default/pods/{ONCE}")
    wait_for(f"{ONCE}'s EIP {once_ip} released with the pod", lambda: (
        _eip_record(env, once_ip) is None), timeout=120,
        detail=lambda: str(_eip_record(env, once_ip)))
    assert _curl(env, f"http://{once_ip}{PATH}").startswith("curl exit")
    # the StatefulSet gone, its kept EIP is released too
    wait_for(f"{STS}'s EIP {public_ip} released with its StatefulSet", lambda: (
        _eip_record(env, public_ip) is None), timeout=180,
        detail=lambda: str(_eip_record(env, public_ip)))
