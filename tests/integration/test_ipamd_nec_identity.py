"""NodeENIConfig (nec) fields and failure paths the other nec tests leave out,
against the real kube-apiserver and the cloud emulator:

- the nec ipamd creates names its node twice: ``spec.nodeName`` and the label
  ``tke.cloud.tencent.com/node`` (a label selector finds exactly that node's nec);
- the CRD's own schema refuses more than five ``spec.securityGroupIds`` and a
  ``status.source`` / ``status.securityGroupSource`` outside their enums (the
  apiserver, before ipamd sees anything);
- a nec that cannot be created, or whose status cannot be written, does not hold
  up the node's warm pool: the global targets (or the annotated ones) are in
  force, and a later pass creates the nec / writes the status once the apiserver
  accepts it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from core import names
from harness.ipamd_world import POD_SUBNET3
from ipamd.controllers.necctl import NECS, nec_path
from ipamd.kube.api import JSON, KubeApi, KubeError, load_configuration
from ipamd.rules.warm import ANN_MAX_WARM, ANN_MIN_WARM
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, cloud_ips, ipamd_inprocess, wait_for
from vpcsim.testing import EmulatorHandle

TWO_WARM = ("--min-prebind", "2", "--max-prebind", "2")
G = [f"sg-0000000{i}" for i in range(1, 7)]  # six well-formed group ids


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    k.add_node("n3", "ins-sim00003")  # the same zone as n1
    yield k
    k.wipe()


def nec(kube: Kube, node: str) -> dict[str, Any] | None:
    return kube.api.get_or_none(nec_path(node))


def status_is(kube: Kube, node: str, lo: int, hi: int, source: str) -> bool:
    st = (nec(kube, node) or {}).get("status") or {}
    return (st.get("minWarmTarget"), st.get("maxWarmTarget"), st.get("source")) == (lo, hi, source)


def ips_on(emu: EmulatorHandle, kube: Kube, node: str) -> set[str]:
    enis = {e["metadata"]["name"] for e in kube.vpcenis(node)}
    return {ip for ip, eni in cloud_ips(emu).items() if eni in enis}


def test_nec_names_its_node_in_spec_and_label(kube: Kube, emu: EmulatorHandle) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        for node in ("n1", "n3"):
            obj = wait_for(f"nec {node}", partial(nec, kube, node))
            assert obj["spec"]["nodeName"] == node, obj
            assert obj["metadata"]["labels"][names.NODE_LABEL] == node, obj
        found = [
            o["metadata"]["name"]
            for page, _ in kube.api.list_pages(NECS, label_selector=f"{names.NODE_LABEL}=n1")
            for o in page
        ]
        assert found == ["n1"]


def test_crd_schema_refuses_bad_groups_and_sources(kube: Kube) -> None:
    body: dict[str, Any] = {
        "apiVersion": names.CRD_API_VERSION,
        "kind": "NodeENIConfig",
        "metadata": {"name": "n1"},
        "spec": {"nodeName": "n1", "securityGroupIds": G},
    }
    with pytest.raises(KubeError) as refused:
        kube.api.create(NECS, body)
    assert refused.value.status == 422 and "securityGroupIds" in refused.value.message
    assert nec(kube, "n1") is None
    body["spec"]["securityGroupIds"] = G[:5]  # five: accepted
    kube.api.create(NECS, body)
    for status in ({"source": "elsewhere"}, {"securityGroupSource": "elsewhere"}):
        with pytest.raises(KubeError) as bad:
            kube.api.patch(nec_path("n1") + "/status", {"status": status})
        assert bad.value.status == 422, status
        assert next(iter(status)) in bad.value.message
    assert not (nec(kube, "n1") or {}).get("status")


class NecFaults(KubeApi):
    """ipamd's API client; while ``failing`` is set, creating a nec or writing a
    nec's status answers HTTP 500 (counted in ``refused``)."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(load_configuration(str(kube.kubeconfig)))
        self.failing = threading.Event()
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def _refuse(self, method: str, path: str) -> None:
        with self._lock:
            self.refused.append(f"{method} {path}")
        raise KubeError(method, path, 500, "injected by the test")

    def create(self, path: str, body: JSON, *, timeout: float | None = None) -> JSON:
        if self.failing.is_set() and path == NECS:
            self._refuse("POST", path)
        return super().create(path, body, timeout=timeout)

    def patch(self, path: str, body: JSON) -> JSON:
        if self.failing.is_set() and path.startswith(NECS + "/") and path.endswith("/status"):
            self._refuse("PATCH", path)
        return super().patch(path, body)


def test_nec_create_or_status_write_failing_does_not_hold_up_the_pool(
    kube: Kube, emu: EmulatorHandle
) -> None:
    api = NecFaults(kube)
    api.failing.set()
    with ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM, api=api):
        # no nec can be made: the node's pool fills to the global targets all the same
        wait_for("2 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 2)
        assert any(r.startswith("POST ") for r in api.refused), api.refused
        assert nec(kube, "n1") is None
        api.failing.clear()
        # a later pass creates it and reports the global targets
        wait_for("nec n1 with its status", lambda: status_is(kube, "n1", 2, 2, "global"))
        # the status cannot be written: the annotated targets are in force anyway
        api.failing.set()
        before = len(api.refused)
        ann = {ANN_MIN_WARM: "4", ANN_MAX_WARM: "4"}
        kube.api.patch(nec_path("n1"), {"metadata": {"annotations": ann}})
        wait_for("4 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 4)
        wait_for(
            "a status write refused",
            lambda: any(r.startswith("PATCH ") for r in api.refused[before:]),
        )
        assert status_is(kube, "n1", 2, 2, "global")  # the report is late, not the pool
        api.failing.clear()
        wait_for("the status catches up", lambda: status_is(kube, "n1", 4, 4, "annotation"))
        assert len(ips_on(emu, kube, "n3")) == 2
