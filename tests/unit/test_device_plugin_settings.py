"""Settings (flag > env > default), identity resolution, the metadata client's errors."""

from __future__ import annotations

import pytest

from cloud.metadata import MetadataClient, MetadataError
from core.ids import InstanceId, Zone
from core.names import RESOURCE_ENI_IP
from device_plugin.identity import resolve_identity
from device_plugin.settings import OPTIONS, Settings, SettingsError, build_parser, load


def test_defaults() -> None:
    s = load([], {})
    assert s.device_plugin_dir == "/var/lib/kubelet/device-plugins"
    assert s.resource_name == RESOURCE_ENI_IP == "tke.cloud.tencent.com/eni-ip"
    assert s.metadata_url == "http://metadata.tencentyun.com/latest/meta-data/"
    assert s.socket_path == "/var/lib/kubelet/device-plugins/tke-eni-ip.sock"
    assert s.kubelet_socket_path == "/var/lib/kubelet/device-plugins/kubelet.sock"
    assert s.cap is None


def test_every_setting_has_a_flag_and_env() -> None:
    fields = set(Settings.__dataclass_fields__)
    assert {o.field for o in OPTIONS} == fields
    help_text = build_parser().format_help()
    for opt in OPTIONS:
        assert opt.flag in help_text and opt.env in help_text
    for required in (
        "--device-plugin-dir",
        "--resource-name",
        "--metadata-url",
        "--instance-type",
        "--cloud-endpoint",
        "--region",
        "--max-pods",
    ):
        assert required in help_text


def test_flag_beats_env_beats_default() -> None:
    env = {"TKE_ENI_DP_MAX_PODS": "20", "TKE_ENI_DP_INSTANCE_TYPE": "S5.LARGE8"}
    s = load(["--max-pods", "7"], env)
    assert s.max_pods == 7 and s.cap == 7
    assert s.instance_type == "S5.LARGE8"
    assert load([], {"TKE_ENI_DP_WATCH_INTERVAL": "0.25"}).watch_interval == 0.25


@pytest.mark.parametrize(
    ("argv", "env", "match"),
    [
        (["--max-pods", "many"], {}, "--max-pods: invalid value"),
        ([], {"TKE_ENI_DP_MAX_PODS": "-2"}, "TKE_ENI_DP_MAX_PODS: must be >= 0"),
        (["--limits-source", "magic"], {}, "not one of api, table"),
        (["--resource-name", "eni-ip"], {}, "not an extended resource name"),
        (["--resource-name", "kubernetes.io/eni"], {}, "reserved"),
        (["--socket-name", "a/b.sock"], {}, "file names"),
        (["--socket-name", "kubelet.sock"], {}, "must differ"),
        (["--grpc-workers", "1"], {}, ">= 2"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load(argv, env)


class FakeMetadata:
    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.asked: list[str] = []

    def get(self, path: str) -> str:
        self.asked.append(path)
        if path not in self.data:
            raise MetadataError(f"metadata GET {path}: HTTP 404")
        return self.data[path]


META = {
    "instance-id": "ins-abc",
    "instance/instance-type": "SA2.MEDIUM4",
    "placement/zone": "ap-guangzhou-3",
    "placement/region": "ap-guangzhou",
}


def test_identity_from_metadata() -> None:
    ident = resolve_identity(Settings(), FakeMetadata(META))
    assert (ident.instance_id, ident.instance_type, ident.zone, ident.region) == (
        "ins-abc",
        "SA2.MEDIUM4",
        "ap-guangzhou-3",
        "ap-guangzhou",
    )


def test_identity_overrides_skip_metadata() -> None:
    md = FakeMetadata({})
    s = Settings(instance_id="ins-x", instance_type="S5.LARGE8", zone="ap-shanghai-2")
    ident = resolve_identity(s, md)
    assert ident.instance_type == "S5.LARGE8" and ident.region == "ap-shanghai"
    assert "instance-id" not in md.asked and "instance/instance-type" not in md.asked


def test_identity_missing_type_raises() -> None:
    with pytest.raises(MetadataError, match="instance-type"):
        resolve_identity(Settings(), FakeMetadata({"instance-id": "ins-1"}))


def test_metadata_client_connection_error_names_url() -> None:
    # port 9 on loopback: nothing listens there
    client = MetadataClient("http://127.0.0.1:9/latest/meta-data", timeout=1)
    with pytest.raises(MetadataError, match=r"http://127.0.0.1:9/latest/meta-data/instance-id"):
        client.get("instance-id")


@pytest.mark.parametrize(
    ("endpoint", "protocol", "host"),
    [
        ("", "https", "vpc.tencentcloudapi.com"),
        ("vpc.internal.tencentcloudapi.com", "https", "vpc.internal.tencentcloudapi.com"),
        ("http://127.0.0.1:8930", "http", "127.0.0.1:8930"),
        ("http://127.0.0.1:8930/", "http", "127.0.0.1:8930"),
    ],
)
def test_cloud_settings_from_ours(endpoint: str, protocol: str, host: str) -> None:
    from device_plugin.cloudlink import cloud_settings
    from device_plugin.identity import NodeIdentity

    ident = NodeIdentity(InstanceId("ins-1"), "S5.LARGE8", Zone("ap-shanghai-2"), "ap-shanghai")
    s = Settings(cloud_endpoint=endpoint, metadata_url="http://127.0.0.1:1/m/")
    cs = cloud_settings(ident, s, environ={})
    assert (cs.protocol, cs.vpc_endpoint, cs.region, cs.metadata_url) == (
        protocol,
        host,
        "ap-shanghai",
        "http://127.0.0.1:1/m/",
    )
    if endpoint:
        assert cs.cvm_endpoint == host
