"""Pure: does this pod take an ENI IP? The one rule, used by the node agent
(CNI ADD: route-ENI, or the delegate plugins) and by the admission webhook
(add the ``tke.cloud.tencent.com/eni-ip`` request, or leave the pod alone).

* A ``hostNetwork`` pod never does: it uses the node's network, and the
  container runtime never calls CNI for it.
* With ``--eni-only`` (the guide's Method 1, a VPC-CNI-only cluster): every
  other pod does.
* Otherwise (Method 2, VPC-CNI beside Global Router): the pods whose
  ``tke.cloud.tencent.com/networks`` annotation names ``tke-route-eni``
  (a comma-separated list of network names).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.names import ANNOTATION_NETWORKS, NETWORK_ROUTE_ENI


def names_route_eni(annotations: Mapping[str, object] | None) -> bool:
    """The ``networks`` annotation lists ``tke-route-eni`` (whitespace around
    each comma-separated name ignored; a non-string value names nothing)."""
    value = (annotations or {}).get(ANNOTATION_NETWORKS, "")
    if not isinstance(value, str):
        return False
    return NETWORK_ROUTE_ENI in (part.strip() for part in value.split(","))


def takes_eni_ip(
    annotations: Mapping[str, object] | None, *, host_network: bool, eni_only_cluster: bool
) -> bool:
    """Whether the pod gets an ENI IP (see the module's rules)."""
    if host_network:
        return False
    return eni_only_cluster or names_route_eni(annotations)
