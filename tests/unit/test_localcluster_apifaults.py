"""The fault plan of the apiserver fault proxy: request classification as RBAC
spells it, rule validation, and that a plan injects exactly what it is told."""

from __future__ import annotations

import pytest

from localcluster.apifaults import FaultConfigError, FaultPlan, classify, rule


@pytest.mark.parametrize(
    ("method", "target", "verb", "resource", "ns", "name"),
    [
        ("GET", "/api/v1/pods?limit=500", "list", "pods", "", ""),
        ("GET", "/api/v1/namespaces/default/pods/web-0", "get", "pods", "default", "web-0"),
        ("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5", "watch",
         "pods", "default", ""),
        ("GET", "/api/v1/watch/namespaces/default/pods", "watch", "pods", "default", ""),
        ("POST", "/api/v1/namespaces/default/configmaps", "create", "configmaps", "default", ""),
        ("PUT", "/api/v1/namespaces/kube-system/configmaps/x", "update", "configmaps",
         "kube-system", "x"),
        ("PATCH", "/apis/networking.tke.cloud.tencent.com/v1/vpcips/10.0.32.4/status", "patch",
         "vpcips/status", "", "10.0.32.4"),
        ("DELETE", "/apis/networking.tke.cloud.tencent.com/v1/vpcips/10.0.32.4", "delete",
         "vpcips", "", "10.0.32.4"),
        ("DELETE", "/api/v1/namespaces/default/pods", "deletecollection", "pods", "default", ""),
        ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/tke-eni-ipamd",
         "get", "leases", "kube-system", "tke-eni-ipamd"),
        ("GET", "/api/v1/namespaces/default", "get", "namespaces", "default", "default"),
        ("GET", "/healthz", "get", "", "", ""),
        ("GET", "/apis/apps/v1", "get", "", "", ""),
    ],
)
def test_classify(method: str, target: str, verb: str, resource: str, ns: str, name: str) -> None:
    r = classify(method, target)
    assert (r.verb, r.resource_key, r.namespace, r.name) == (verb, resource, ns, name)


def test_classify_group() -> None:
    assert classify("GET", "/apis/apps/v1/deployments").group == "apps"
    assert classify("GET", "/api/v1/nodes").group == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "explode"}, "fault kind 'explode'"),
        ({"kind": "error", "rate": 1.5}, "rate 1.5 is not in [0, 1]"),
        ({"kind": "error", "verbs": "get,frob"}, "unknown verbs ['frob']"),
        ({"kind": "error", "resources": "/api/v1/pods"}, "must look like"),
        ({"kind": "error", "status": 200}, "status 200 is not an HTTP error"),
        ({"kind": "timeout", "delay": -1}, "delay -1 is negative"),
        ({"kind": "error", "limit": -2}, "limit -2 is negative"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    kind = str(kwargs.pop("kind"))
    with pytest.raises(FaultConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule(kind, **kwargs)  # type: ignore[arg-type]


def test_resources_match_as_in_rbac() -> None:
    r = rule("error", verbs="patch", resources="vpcips")
    assert r.matches(classify("PATCH", "/apis/g/v1/vpcips/a"))
    assert not r.matches(classify("PATCH", "/apis/g/v1/vpcips/a/status"))
    assert not r.matches(classify("GET", "/apis/g/v1/vpcips/a"))
    star = rule("error", resources="*")
    assert star.matches(classify("PATCH", "/apis/g/v1/vpcips/a/status"))
    every = rule("error")
    assert every.matches(classify("GET", "/healthz"))


def test_rate_zero_never_injects_and_rate_one_always() -> None:
    plan = FaultPlan(seed=1)
    plan.set_rules(rule("error", 0.0))
    assert all(plan.pick(classify("GET", "/api/v1/pods")) is None for _ in range(1000))
    plan.set_rules(rule("error", 1.0, status=429))
    assert all(plan.pick(classify("GET", "/api/v1/pods")) is not None for _ in range(1000))
    assert plan.stats() == {"error-429": 1000}
    assert plan.requests == 2000


def test_limit_and_first_matching_rule_wins() -> None:
    plan = FaultPlan()
    plan.set_rules(
        rule("reply-lost", verbs="create", resources="configmaps", limit=2),
        rule("error", verbs="create", status=503),
    )
    req = classify("POST", "/api/v1/namespaces/default/configmaps")
    kinds = [r.label if (r := plan.pick(req)) else "" for _ in range(4)]
    assert kinds == ["reply-lost", "reply-lost", "error-503", "error-503"]
    assert plan.pick(classify("GET", "/api/v1/namespaces/default/configmaps")) is None
    assert plan.stats() == {"reply-lost": 2, "error-503": 2}
    assert plan.journal[0].startswith("reply-lost create configmaps /api/v1/")


def test_rate_is_a_seeded_probability() -> None:
    def run(seed: int) -> list[bool]:
        plan = FaultPlan(seed=seed)
        plan.set_rules(rule("error", 0.25))
        return [plan.pick(classify("GET", "/api/v1/pods")) is not None for _ in range(4000)]

    a = run(3)
    assert a == run(3)
    assert 800 < sum(a) < 1200  # 1000 expected; bounds are > 7 sigma away


def test_named_rule_counts_under_its_name() -> None:
    plan = FaultPlan()
    plan.set_rules(rule("timeout", delay=0.1, name="lease-timeout", resources="leases"))
    plan.pick(classify("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/b"))
    assert plan.stats() == {"lease-timeout": 1}
    assert plan.total() == 1
