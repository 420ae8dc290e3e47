"""The default network's plugins get the node's own range from "usePodCidr"."""

from __future__ import annotations

import pytest

from cni.agent.podcidr import PodCidrError, needs_pod_cidr, with_pod_cidr

DELEGATES = [{"type": "bridge", "bridge": "cni0", "isDefaultGateway": True,
              "ipam": {"type": "host-local", "ranges": [[{"subnet": "usePodCidr"}]],
                       "dataDir": "/var/lib/tke-eni-agent/delegate-ipam"}}]


def test_placeholder_is_found_and_replaced_everywhere() -> None:
    assert needs_pod_cidr(DELEGATES)
    got = with_pod_cidr(DELEGATES, "10.244.3.0/24")
    assert got[0]["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert got[0]["bridge"] == "cni0" and not needs_pod_cidr(got)
    assert DELEGATES[0]["ipam"]["ranges"] == [[{"subnet": "usePodCidr"}]], "input unchanged"


def test_no_placeholder_means_nothing_to_look_up() -> None:
    plain = [{"type": "bridge", "ipam": {"type": "host-local",
                                         "ranges": [[{"subnet": "10.244.0.0/24"}]]}}]
    assert not needs_pod_cidr(plain)
    assert with_pod_cidr(plain, "10.1.0.0/24") == plain


@pytest.mark.parametrize("bad", ["", "10.244.3.0/33", "node-a"])
def test_a_bad_pod_cidr_is_a_clear_error(bad: str) -> None:
    with pytest.raises(PodCidrError, match="podCIDR"):
        with_pod_cidr(DELEGATES, bad)
