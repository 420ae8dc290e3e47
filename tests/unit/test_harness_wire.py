"""The test bed's harness spells the product's wire the way the product does: the
objects of the ipamd tests (harness.ipamd_world) read back through the product's own
parsing, and the kubelet stand-in's device-plugin API (generated from the kubelet's
own proto, harness.deviceplugin_api) carries the same messages and fields as the
product's committed stubs. The harness may not import the product (import-linter);
this test is where the two meet."""

from __future__ import annotations

from typing import Any

from core import names
from core.claimpolicy import is_static
from core.podnetwork import takes_eni_ip
from harness import deviceplugin_api, ipamd_world
from protos.v1beta1 import api_pb2


def test_ipamd_world_objects_use_the_products_names() -> None:
    assert ipamd_world.INSTANCE_TYPE_LABEL == names.INSTANCE_TYPE_LABEL
    node = ipamd_world.node_manifest("n1", "ins-sim00002")
    assert node["metadata"]["labels"][names.ZONE_LABEL] == ipamd_world.ZONE4
    cm = ipamd_world.subnets_configmap("subnet-a:subnet-b")
    assert (cm["metadata"]["namespace"], cm["metadata"]["name"]) == (
        names.CONFIGMAP_NAMESPACE,
        names.CONFIGMAP_NAME,
    )
    assert cm["data"][names.CM_SUBNET_ID] == "subnet-a:subnet-b"
    assert cm["data"][names.CM_VPC_ID] == ipamd_world.VPC


def test_ipamd_world_pods_are_route_eni_and_static_as_asked() -> None:
    static = ipamd_world.pod_manifest("web-0", "n1")
    annotations = static["metadata"]["annotations"]
    assert takes_eni_ip(annotations, host_network=False, eni_only_cluster=False)
    assert is_static(annotations, static["metadata"]["ownerReferences"])
    dynamic = ipamd_world.pod_manifest("web-0", "n1", policy=None)
    assert takes_eni_ip(
        dynamic["metadata"]["annotations"], host_network=False, eni_only_cluster=False
    )
    assert not is_static(dynamic["metadata"]["annotations"], None)


def _fields(message: Any) -> dict[str, tuple[int, int]]:
    return {f.name: (f.number, f.type) for f in message.DESCRIPTOR.fields}


def test_kubelet_device_plugin_api_matches_the_products_stubs() -> None:
    kubelet = deviceplugin_api.messages()
    ours = api_pb2.DESCRIPTOR
    theirs = kubelet.DESCRIPTOR
    assert ours.package == "v1beta1"
    assert ours.services_by_name["Registration"].full_name == deviceplugin_api.REGISTRATION
    assert ours.services_by_name["DevicePlugin"].full_name == deviceplugin_api.DEVICE_PLUGIN
    for name in ours.message_types_by_name:
        assert name in theirs.message_types_by_name, f"{name}: not in the kubelet's proto"
        assert _fields(getattr(api_pb2, name)) == _fields(getattr(kubelet, name)), name
    for service in ours.services_by_name.values():
        kubelet_service = theirs.services_by_name[service.name]
        assert {m.name for m in service.methods} <= {m.name for m in kubelet_service.methods}
