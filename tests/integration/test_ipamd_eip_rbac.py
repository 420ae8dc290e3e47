"""deploy/ipamd's RBAC covers pod EIPs: ipamd with the tke-eni-ipamd
ServiceAccount's own token allocates a pod's EIP, writes the pod's
eip-public-ip annotation (pods: patch) and its events."""

from __future__ import annotations

import json

from core import eip as ce
from tests.integration.ipamd_harness import Kube, ipamd_inprocess, wait_for
from tests.integration.test_ipamd_rbac import kube, sa_api  # noqa: F401 - fixtures
from vpcsim.testing import EmulatorHandle


def test_pod_eip_with_ipamds_own_service_account(kube: Kube, emu: EmulatorHandle) -> None:  # noqa: F811
    api = sa_api(kube.kubeconfig, kube.api)
    emu.set_faults(rate_limits=False)
    with ipamd_inprocess(emu, kube.kubeconfig, "--enable-pod-eip", "true", api=api):
        kube.add_pod(
            "web",
            "n1",
            policy=None,
            annotations={ce.ANNOTATION_EIP_ATTRIBUTES: json.dumps({"Bandwidth": "5"})},
        )

        def annotated() -> str:
            obj = kube.api.get_or_none("/api/v1/namespaces/default/pods/web") or {}
            return str(obj["metadata"]["annotations"].get(ce.ANNOTATION_EIP_PUBLIC_IP) or "")

        public = wait_for("the eip-public-ip annotation", annotated)
        (e,) = emu.state()["eips"]["addresses"]
        assert e["address_ip"] == public
        wait_for("an EipAllocated event", lambda: kube.events("default", ce.REASON_ALLOCATED))
        kube.delete_pod("web")
        wait_for("released", lambda: not emu.state()["eips"]["addresses"], 30)
