"""deploy/scheduler-extender serves the verbs over mutual TLS only: the settings the
kubelet would give the container (argv + env, through the extender's own loader)
require the client certificate and read every TLS file from the Secret volume;
probes and Prometheus use the plain health port; the Service exposes only the
TLS port. (test_deploy_workloads.py has kube-scheduler validate the scheduler
configuration; test_extender_scheduler.py runs the real scheduler over TLS.)"""

from __future__ import annotations

import os
from typing import Any

import pytest

from scheduler_extender import config
from tests.deploy_support import DEPLOY, container_process, containers, find, kustomize_build

NAME = "tke-eni-ip-scheduler"
SECRET = "tke-eni-ip-scheduler-tls"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize_build(DEPLOY)


def test_extender_requires_client_certificates_from_its_secret(
    built: list[dict[str, Any]],
) -> None:
    deploy = find(built, "Deployment", NAME)
    (c,) = containers(deploy)
    argv, env = container_process(built, deploy, c)
    s = config.parse(argv, env)
    assert s.insecure_http is False
    # host network (deploy/: like ipamd and the webhook): ports of the node, the Service's 8443
    assert deploy["spec"]["template"]["spec"].get("hostNetwork") is True
    assert (s.port, s.health_port) == (9872, 9873)
    assert s.max_body_bytes == 64 * 1024 * 1024
    assert s.client_names == "system:kube-scheduler"
    volumes = {v["name"]: v for v in deploy["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    for path in (s.tls_cert_file, s.tls_key_file, s.client_ca_file):
        volume = mounts[os.path.dirname(path)]
        assert volume["secret"]["secretName"] == SECRET, volume
        assert os.path.basename(path) in {i["path"] for i in volume["secret"]["items"]}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"https": 9872, "health": 9873}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == "health", c[probe]
        assert c[probe]["httpGet"].get("scheme", "HTTP") == "HTTP"
    pod_sc = deploy["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["fsGroup"] == pod_sc["runAsGroup"]  # the 0440 Secret files are readable
    svc = find(built, "Service", NAME)
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(8443, "https")]
    assert not [o for o in built if o["kind"] == "Secret" and o["metadata"]["name"] == SECRET], (
        "the TLS Secret holds the operator's keys: never shipped in deploy/"
    )
