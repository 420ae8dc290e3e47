"""The one rule "does this pod take an ENI IP" (core.podnetwork), as the node
agent and the admission webhook both use it."""

from __future__ import annotations

import pytest

from core.names import ANNOTATION_NETWORKS
from core.podnetwork import names_route_eni, takes_eni_ip

ROUTE = {ANNOTATION_NETWORKS: "tke-route-eni"}


@pytest.mark.parametrize(
    ("annotations", "host_network", "eni_only", "want"),
    [
        # Method 1 (--eni-only): every pod that is not hostNetwork
        ({}, False, True, True),
        (None, False, True, True),
        (ROUTE, False, True, True),
        ({}, True, True, False),
        (ROUTE, True, True, False),
        # Method 2: the pods that name tke-route-eni
        ({}, False, False, False),
        (ROUTE, False, False, True),
        (ROUTE, True, False, False),
        ({ANNOTATION_NETWORKS: "other, tke-route-eni"}, False, False, True),
        ({ANNOTATION_NETWORKS: " tke-route-eni ,x"}, False, False, True),
        ({ANNOTATION_NETWORKS: "tke-route-eni-x"}, False, False, False),
        ({ANNOTATION_NETWORKS: "TKE-ROUTE-ENI"}, False, False, False),
        ({ANNOTATION_NETWORKS: ""}, False, False, False),
        ({ANNOTATION_NETWORKS: 7}, False, False, False),
        ({"other": "tke-route-eni"}, False, False, False),
    ],
)
def test_takes_eni_ip(
    annotations: dict[str, object] | None, host_network: bool, eni_only: bool, want: bool
) -> None:
    assert takes_eni_ip(annotations, host_network=host_network, eni_only_cluster=eni_only) is want


def test_names_route_eni_reads_only_the_networks_annotation() -> None:
    assert names_route_eni(ROUTE)
    assert not names_route_eni(None)
    assert not names_route_eni({ANNOTATION_NETWORKS: None})
