"""The Kubernetes IP source publishes one view from its VpcENI and VpcIP
watches: two watch threads publishing at once must never leave an older
view on top of a newer one (seen on the local run: a node whose VpcIPs were
listed before its VpcENI kept a view with its ENI and no IP, and every ADD
found "0 total" until some other change came)."""

from __future__ import annotations

import threading
from typing import Any

from cni.agent.ipsource import NodeIpView
from cni.agent.sources.kube_ipsource import KubeNodeIpSource
from core.names import PLURAL_VPC_ENI, PLURAL_VPC_IP
from kit.kubelite import KubeLite

ENI = {
    "metadata": {"name": "eni-1"},
    "spec": {"nodeName": "n1", "zone": "z1"},
    "status": {
        "phase": "Attached",
        "mac": "02:00:00:00:00:01",
        "gateway": "10.0.0.1",
        "primaryIp": "10.0.0.2",
        "subnetCidr": "10.0.0.0/24",
    },
}
IPS = [
    {"metadata": {"name": f"10.0.0.{i}"}, "spec": {"nodeName": "n1", "eniId": "eni-1",
                                                   "state": "Assigned"}}
    for i in (10, 11, 12)
]


def test_concurrent_publishes_end_with_the_latest_state() -> None:
    source = KubeNodeIpSource(KubeLite("https://127.0.0.1:1"), "n1")
    real_set_view = source._mem.set_view
    first_in = threading.Event()
    calls: list[int] = []

    def slow_first_set_view(enis: Any, ips: Any) -> None:
        calls.append(len(ips))
        if len(calls) == 1:  # the first publish (the ENI alone) is slow to land
            first_in.set()
            threading.Event().wait(0.5)
        real_set_view(enis, ips)

    source._mem.set_view = slow_first_set_view  # type: ignore[method-assign]
    eni_thread = threading.Thread(
        target=source._handlers(PLURAL_VPC_ENI).replace, args=([ENI],)
    )
    eni_thread.start()
    assert first_in.wait(5)
    source._handlers(PLURAL_VPC_IP).replace(IPS)  # the VpcIP list lands meanwhile
    eni_thread.join(5)
    view: NodeIpView = source.view()
    assert [e.eni_id for e in view.enis] == ["eni-1"]
    assert [i.ip for i in view.ips] == ["10.0.0.10", "10.0.0.11", "10.0.0.12"], (
        f"the view lost the node's IPs: {view.ips} (publishes landed with {calls} IPs)"
    )
