"""The product's cloud client over HTTPS: the real adapter, configured the way a
daemon is (ipamd's flags and the ``TKE_CLOUD_*`` env), reaches the emulator's
HTTPS listener when ``--cloud-ca-file`` / ``TKE_CLOUD_CA_FILE`` names the CA the
emulator wrote, and fails with a message naming that setting when it does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.adapter import TencentCloud
from cloud.errors import CloudError
from cloud.settings import CloudSettings, from_env
from core.ids import InstanceId, SubnetId, VpcId
from ipamd.config import load
from vpcsim.testing import RemoteEmulator, run_emulator, spawn_emulator

CLUSTER = "cls-sim00001"
NODE1 = InstanceId("ins-sim00001")
POD3 = SubnetId("subnet-sim00033")
FAST = {  # quick task polling and one attempt: a test, not a cluster
    "TKE_CLOUD_TASK_POLL": "0.025",
    "TKE_CLOUD_RATE_FRACTION": "1",
    "TKE_CLOUD_MAX_ATTEMPTS": "1",
}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteEmulator]:
    with spawn_emulator(tmp_path_factory.mktemp("vpcsim-https"), https=True) as handle:
        assert handle.ca_file is not None and handle.https_port is not None
        yield handle


def _ipamd_cloud(emu: RemoteEmulator, *extra: str) -> CloudSettings:
    argv = ["--clusterid", CLUSTER, "--cloud-endpoint", emu.https_endpoint,
            "--cloud-protocol", "https", *extra]
    return load(argv, {**emu.client_env(), **FAST}).cloud


def test_ipamd_settings_with_the_ca_reach_the_emulator_over_https(emu: RemoteEmulator) -> None:
    assert emu.ca_file is not None
    settings = _ipamd_cloud(emu, "--cloud-ca-file", str(emu.ca_file))
    assert (settings.protocol, settings.vpc_endpoint, settings.ca_file) == (
        "https", emu.https_endpoint, str(emu.ca_file))
    cloud = TencentCloud.from_settings(settings)
    assert [i.instance_id for i in cloud.describe_instances([NODE1])] == [NODE1]  # CVM
    eni = cloud.create_eni(vpc_id=VpcId("vpc-sim00001"), subnet_id=POD3, name="over-https",
                           secondary_ip_count=1)  # VPC, and its task polled over HTTPS
    assert eni.eni_id in {e["eni_id"] for e in emu.state()["enis"]}  # the HTTP view
    cloud.delete_eni(eni.eni_id)
    assert eni.eni_id not in {e["eni_id"] for e in emu.state()["enis"]}


def test_the_env_var_alone_carries_the_ca(emu: RemoteEmulator) -> None:
    assert emu.ca_file is not None
    env = {**emu.client_env(), **FAST, "TKE_CLOUD_PROTOCOL": "https",
           "TKE_CLOUD_VPC_ENDPOINT": emu.https_endpoint,
           "TKE_CLOUD_CVM_ENDPOINT": emu.https_endpoint,
           "TKE_CLOUD_CA_FILE": str(emu.ca_file)}
    cloud = TencentCloud.from_settings(from_env(env))
    assert {s.subnet_id for s in cloud.describe_subnets([POD3])} == {POD3}


def test_without_the_ca_the_call_fails_naming_the_setting(emu: RemoteEmulator) -> None:
    cloud = TencentCloud.from_settings(_ipamd_cloud(emu))  # the SDK's own bundle
    with pytest.raises(CloudError) as err:
        cloud.describe_instances([NODE1])
    assert err.value.code == "ClientNetworkError"
    message = str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message, message
    assert "not trusted by the SDK's own CA bundle" in message, message
    assert "--cloud-ca-file / TKE_CLOUD_CA_FILE" in message, message


def test_a_ca_that_did_not_sign_the_endpoint_fails_naming_it(
    emu: RemoteEmulator, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    with run_emulator(ca_file=other):  # another emulator's CA: not this one's
        pass
    cloud = TencentCloud.from_settings(_ipamd_cloud(emu, "--cloud-ca-file", str(other)))
    with pytest.raises(CloudError, match=rf"not trusted by {other}.*CERTIFICATE_VERIFY_FAILED"):
        cloud.describe_instances([NODE1])


def test_a_missing_ca_file_is_refused_before_any_call(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    argv = ["--clusterid", CLUSTER, "--cloud-ca-file", str(missing)]
    with pytest.raises(ValueError, match=r"--cloud-ca-file: no readable file there.*"
                       r"env TKE_CLOUD_CA_FILE"):
        load(argv, {})
    with pytest.raises(ValueError, match=r"no-such-ca.pem.*--cloud-ca-file"):
        TencentCloud.from_settings(CloudSettings(ca_file=str(missing)))
