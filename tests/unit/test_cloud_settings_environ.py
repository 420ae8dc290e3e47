"""The cloud settings come from the environment a loader is given, never from
the process's own: ``ipamd.config.load(argv, env)`` and the device plugin's
``cloud_settings(..., environ=...)`` read ``TKE_CLOUD_*`` / ``TENCENTCLOUD_*``
from ``env`` (os.environ holds other values here to prove it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ids import InstanceId, Zone

CLUSTER = "cls-abcd1234"
THEIRS = {  # the process's own environment: must be ignored
    "TKE_CLOUD_REGION": "ap-beijing",
    "TKE_CLOUD_MAX_ATTEMPTS": "9",
    "TKE_CLOUD_PROTOCOL": "http",
    "TKE_CLOUD_VPC_ENDPOINT": "os-environ.invalid:1",
    "TKE_CLOUD_SECURITY_GROUPS": "sg-osenv",
    "TENCENTCLOUD_SECRET_ID": "AKIDosenviron",
    "TENCENTCLOUD_SECRET_KEY": "osenviron-key",
}
OURS = {  # the environment handed to the loader
    "TKE_CLOUD_REGION": "ap-shanghai",
    "TKE_CLOUD_MAX_ATTEMPTS": "3",
    "TKE_CLOUD_VPC_ENDPOINT": "vpc.internal.tencentcloudapi.com",
    "TKE_CLOUD_SECURITY_GROUPS": "sg-1,sg-2",
    "TENCENTCLOUD_SECRET_ID": "AKIDgiven",
    "TENCENTCLOUD_SECRET_KEY": "given-key",
}


@pytest.fixture
def other_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in THEIRS.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("other_os_environ")
def test_ipamd_load_reads_cloud_settings_from_the_env_given() -> None:
    from ipamd.config import load

    cloud = load(["--clusterid", CLUSTER], OURS).cloud
    got = (cloud.region, cloud.max_attempts, cloud.protocol, cloud.vpc_endpoint,
           cloud.security_group_ids, cloud.secret_id, cloud.secret_key)
    assert got == ("ap-shanghai", 3, "https", "vpc.internal.tencentcloudapi.com",
                   ("sg-1", "sg-2"), "AKIDgiven", "given-key")


@pytest.mark.usefixtures("other_os_environ")
def test_ipamd_load_with_an_empty_env_takes_the_defaults() -> None:
    from cloud.settings import CloudSettings
    from ipamd.config import load

    cloud = load(["--clusterid", CLUSTER], {}).cloud
    base = CloudSettings()
    assert (cloud.region, cloud.max_attempts, cloud.protocol, cloud.vpc_endpoint) == (
        base.region, base.max_attempts, base.protocol, base.vpc_endpoint)
    assert cloud.security_group_ids == () and cloud.secret_id is None


@pytest.mark.usefixtures("other_os_environ")
def test_ipamd_load_flag_beats_the_env_given() -> None:
    from ipamd.config import load

    cloud = load(["--clusterid", CLUSTER, "--cloud-region", "ap-chengdu",
                  "--cloud-max-attempts", "4"], OURS).cloud
    assert (cloud.region, cloud.max_attempts) == ("ap-chengdu", 4)


@pytest.mark.usefixtures("other_os_environ")
def test_device_plugin_cloud_settings_read_the_environ_given() -> None:
    from device_plugin.cloudlink import cloud_settings
    from device_plugin.identity import NodeIdentity
    from device_plugin.settings import Settings

    ident = NodeIdentity(InstanceId("ins-1"), "S5.LARGE8", Zone("ap-shanghai-2"), "")
    cs = cloud_settings(ident, Settings(metadata_url="http://127.0.0.1:1/m/"), environ=OURS)
    assert (cs.region, cs.max_attempts, cs.protocol, cs.vpc_endpoint, cs.secret_id) == (
        "ap-shanghai", 3, "https", "vpc.internal.tencentcloudapi.com", "AKIDgiven")


def test_secrets_are_redacted_in_the_effective_configuration() -> None:
    from cloud.settings import from_env
    from ipamd.config import load

    env = {**OURS, "TENCENTCLOUD_SESSION_TOKEN": "given-token"}
    cloud = from_env(env)
    assert (cloud.secret_key, cloud.token) == ("given-key", "given-token")
    for config in (cloud.redacted(), load(["--clusterid", CLUSTER], env).redacted()["cloud"]):
        assert config["secret_key"] == config["token"] == "<redacted>"
        assert config["secret_id"] == "AKIDgiven" and config["region"] == "ap-shanghai"
        assert "given-key" not in str(config) and "given-token" not in str(config)


def test_ca_file_setting_names_its_source_when_unreadable(tmp_path: Path) -> None:
    from cloud.settings import from_env
    from kit.settings import SettingsError

    ca = tmp_path / "ca.pem"
    assert from_env({}).ca_file is None  # the SDK's own bundle
    with pytest.raises(SettingsError, match=r"TKE_CLOUD_CA_FILE: no readable file there, got "
                       r"'.*ca.pem' \(flag --cloud-ca-file, env TKE_CLOUD_CA_FILE\)"):
        from_env({"TKE_CLOUD_CA_FILE": str(ca)})
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert from_env({"TKE_CLOUD_CA_FILE": str(ca)}).ca_file == str(ca)
