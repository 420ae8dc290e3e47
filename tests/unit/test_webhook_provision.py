"""webhook.provision against fakes of the two API calls it makes (the real
apiserver runs in tests/integration/test_webhook_apiserver.py): the races and
failures a real cluster rarely shows on demand."""

from __future__ import annotations

import base64
import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from webhook import pki
from webhook.provision import Provisioner, ProvisionError
from webhook.provision_config import CertsSettings

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def settings(**kw: Any) -> CertsSettings:
    return CertsSettings(wait_timeout=0.0, **kw)


def secret_obj(body: dict[str, Any], rv: str = "1") -> Any:
    return SimpleNamespace(data=body["data"], metadata=SimpleNamespace(resource_version=rv))


class FakeCore:
    def __init__(self) -> None:
        self.secret: dict[str, Any] | None = None
        self.create_conflict_with: dict[str, Any] | None = None
        self.calls: list[str] = []

    def read_namespaced_secret(self, name: str, ns: str) -> Any:
        self.calls.append("read")
        if self.secret is None:
            raise ApiException(status=404)
        return secret_obj(self.secret)

    def create_namespaced_secret(self, ns: str, body: dict[str, Any]) -> None:
        self.calls.append("create")
        if self.create_conflict_with is not None:
            self.secret = self.create_conflict_with
            raise ApiException(status=409)
        self.secret = body

    def replace_namespaced_secret(self, name: str, ns: str, body: dict[str, Any]) -> None:
        self.calls.append("replace")
        assert body["metadata"]["resourceVersion"] == "1"
        self.secret = body


class FakeAdmission:
    def __init__(self, hooks: int = 2) -> None:
        self.bundles = [""] * hooks
        self.missing = False
        self.fail_patches = 0
        self.patches: list[list[dict[str, Any]]] = []

    def read_mutating_webhook_configuration(self, name: str) -> Any:
        if self.missing:
            raise ApiException(status=404)
        return SimpleNamespace(webhooks=[
            SimpleNamespace(name=f"h{i}", client_config=SimpleNamespace(ca_bundle=b or None))
            for i, b in enumerate(self.bundles)])

    def patch_mutating_webhook_configuration(self, name: str, ops: list[dict[str, Any]]) -> None:
        if self.fail_patches:
            self.fail_patches -= 1
            raise ApiException(status=422)
        self.patches.append(ops)
        for op in ops:
            if op["op"] == "add":
                self.bundles[int(op["path"].split("/")[2])] = op["value"]


def provisioner(core: FakeCore, adm: FakeAdmission, **kw: Any) -> Provisioner:
    return Provisioner(settings(**kw), core, adm, now=lambda: NOW, sleep=lambda _s: None)


def cas(adm: FakeAdmission, i: int = 0) -> list[bytes]:
    return pki.certificates(base64.b64decode(adm.bundles[i]))


def test_first_run_creates_and_patches_then_keeps() -> None:
    core, adm = FakeCore(), FakeAdmission()
    out = provisioner(core, adm).run()
    assert (out.secret, out.ca_bundle) == ("created", "patched")
    assert core.secret is not None and core.secret["type"] == "kubernetes.io/tls"
    ca = base64.b64decode(core.secret["data"]["ca.crt"])
    assert cas(adm, 0) == cas(adm, 1) == pki.certificates(ca)
    assert all(op["op"] in ("test", "add") for op in adm.patches[0])
    out = provisioner(core, adm).run()
    assert (out.secret, out.ca_bundle) == ("kept", "unchanged")
    assert len(adm.patches) == 1


def test_a_concurrent_creator_wins() -> None:
    core, adm = FakeCore(), FakeAdmission()
    theirs = provisioner(FakeCore(), FakeAdmission())._secret_body(
        pki.issue(["tke-eni-ip-webhook.kube-system.svc"], validity=dt.timedelta(days=365),
                  ca_validity=dt.timedelta(days=3650), now=NOW))
    core.create_conflict_with = theirs
    out = provisioner(core, adm).run()
    assert out.secret == "taken"
    assert cas(adm) == pki.certificates(base64.b64decode(theirs["data"]["ca.crt"]))


def test_renewal_trusts_both_cas_before_the_secret_changes() -> None:
    core, adm = FakeCore(), FakeAdmission()
    provisioner(core, adm).run()
    assert core.secret is not None
    old_ca = base64.b64decode(core.secret["data"]["ca.crt"])
    order: list[str] = []
    real_patch = adm.patch_mutating_webhook_configuration

    def patch(name: str, ops: list[dict[str, Any]]) -> None:
        order.append("patch")
        real_patch(name, ops)

    adm.patch_mutating_webhook_configuration = patch  # type: ignore[method-assign]
    real_replace = core.replace_namespaced_secret

    def replace(name: str, ns: str, body: dict[str, Any]) -> None:
        order.append("replace")
        real_replace(name, ns, body)

    core.replace_namespaced_secret = replace  # type: ignore[method-assign]
    out = provisioner(core, adm, validity="9000h", renew_before="8900h").run()
    assert out.secret == "renewed" and "within" in out.reason
    assert order[0] == "patch" and "replace" in order  # the bundle first
    new_ca = base64.b64decode(core.secret["data"]["ca.crt"])
    assert cas(adm) == pki.certificates(new_ca) + pki.certificates(old_ca)


def test_patch_conflicts_are_retried_and_bounded() -> None:
    core, adm = FakeCore(), FakeAdmission()
    adm.fail_patches = 2
    assert provisioner(core, adm).run().ca_bundle == "patched"
    core2, adm2 = FakeCore(), FakeAdmission()
    adm2.fail_patches = 99
    with pytest.raises(ProvisionError, match="kept changing"):
        provisioner(core2, adm2).run()


def test_missing_configuration_and_broken_secret() -> None:
    core, adm = FakeCore(), FakeAdmission()
    adm.missing = True
    with pytest.raises(ProvisionError, match="does not exist after --wait-timeout"):
        provisioner(core, adm).run()
    core.secret = {"data": {"tls.crt": "!!", "tls.key": "", "ca.crt": ""}}
    adm.missing = False
    out = provisioner(core, adm).run()
    assert out.secret == "renewed" and "invalid base64" in out.reason
    with pytest.raises(ProvisionError, match="has no webhooks"):
        provisioner(FakeCore(), FakeAdmission(hooks=0)).run()
