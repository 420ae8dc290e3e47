"""The local run's overlay of the webhook configuration (localrun.webhook): only the
clientConfig changes (the apiserver calls the loopback url); everything else is deploy/'s."""

from __future__ import annotations

import copy
from typing import Any

from localrun.webhook import CONFIGURATION, configuration


def deploy_config() -> dict[str, Any]:
    hook = {"name": "pods.x", "failurePolicy": "Fail", "sideEffects": "None",
            "clientConfig": {"service": {"name": "s", "namespace": "kube-system",
                                         "path": "/mutate", "port": 443},
                             "caBundle": "Zm9v"},
            "namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "NotIn",
                                                        "values": ["kube-system"]}]}}
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration", "metadata": {"name": CONFIGURATION},
            "webhooks": [hook, dict(copy.deepcopy(hook), name="workloads.x")]}


def test_only_the_client_config_changes() -> None:
    original = deploy_config()
    objs = [{"kind": "Service", "metadata": {"name": "s"}}, original]
    got = configuration(objs, "https://127.0.0.1:1234")
    assert [h["clientConfig"] for h in got["webhooks"]] == [
        {"url": "https://127.0.0.1:1234/mutate"}] * 2
    for mine, theirs in zip(got["webhooks"], original["webhooks"], strict=True):
        assert {k: v for k, v in mine.items() if k != "clientConfig"} == \
            {k: v for k, v in theirs.items() if k != "clientConfig"}
    assert original["webhooks"][0]["clientConfig"]["service"]["port"] == 443  # not mutated
