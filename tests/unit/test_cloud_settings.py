"""Settings, credential chain and redaction."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cloud.credentials import Creds, RoleProvider, StaticProvider, provider_for
from cloud.settings import CloudSettings, add_arguments, from_args, from_env


def test_defaults() -> None:
    s = CloudSettings()
    assert (s.region, s.protocol, s.vpc_endpoint) == ("ap-guangzhou", "https",
                                                      "vpc.tencentcloudapi.com")
    assert s.rate_fraction == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [{"protocol": "ftp"}, {"rate_fraction": 0}, {"rate_fraction": 1.5}, {"max_attempts": 0},
     {"task_timeout_s": 0}, {"request_timeout_s": -1}],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="cloud"):
        CloudSettings(**kwargs)  # type: ignore[arg-type]


def test_redacted_hides_secrets() -> None:
    s = CloudSettings(secret_id="AKIDpublic", secret_key="very-secret", token="tok-secret")
    red = s.redacted()
    assert red["secret_key"] == "<redacted>" and red["token"] == "<redacted>"
    assert red["secret_id"] == "AKIDpublic"
    assert "very-secret" not in repr(s) and "tok-secret" not in repr(s)
    assert "very-secret" not in str(red)


def test_flags_env_and_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(["--cloud-vpc-endpoint", "127.0.0.1:1", "--cloud-protocol", "http",
                            "--cloud-security-groups", "sg-1, sg-2", "--cluster-id", "cls-x"])
    s = from_args(ns, {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "k",
                       "TKE_CLOUD_REGION": "ap-shanghai", "TKE_CLOUD_MAX_ATTEMPTS": "9",
                       "TKE_CLOUD_PROTOCOL": "https"})
    assert s.region == "ap-shanghai" and s.max_attempts == 9
    assert s.vpc_endpoint == "127.0.0.1:1" and s.protocol == "http"
    assert s.security_group_ids == ("sg-1", "sg-2") and s.cluster_id == "cls-x"
    assert s.secret_id == "AKIDenv"


def test_from_env_bad_value_named() -> None:
    with pytest.raises(ValueError, match=r"TKE_CLOUD_MAX_ATTEMPTS: invalid value 'many'.*"
                       r"flag --cloud-max-attempts"):
        from_env({"TKE_CLOUD_MAX_ATTEMPTS": "many"})
    with pytest.raises(ValueError, match=r"--cloud-rate-fraction: must be in \(0, 1\], got '2'"):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        from_args(parser.parse_args(["--cloud-rate-fraction", "2"]), {})


def test_with_endpoint() -> None:
    s = CloudSettings().with_endpoint("127.0.0.1:9")
    assert (s.vpc_endpoint, s.cvm_endpoint, s.protocol) == ("127.0.0.1:9", "127.0.0.1:9", "http")


def test_chain_explicit_first(tmp_path: Path) -> None:
    p = provider_for(CloudSettings(secret_id="AKIDset", secret_key="k"),
                     {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "k"})
    assert isinstance(p, StaticProvider) and p.get().secret_id == "AKIDset"


def test_chain_env(tmp_path: Path) -> None:
    p = provider_for(CloudSettings(credentials_file=str(tmp_path / "none")),
                     {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "k",
                      "TENCENTCLOUD_SESSION_TOKEN": "t"})
    c = p.get()
    assert (c.secret_id, c.token, c.source) == ("AKIDenv", "t", "env")


def test_chain_profile_file(tmp_path: Path) -> None:
    f = tmp_path / "credentials"
    f.write_text("[default]\nsecret_id = AKIDfile\nsecret_key = kf\n")
    c = provider_for(CloudSettings(credentials_file=str(f)), {}).get()
    assert (c.secret_id, c.secret_key) == ("AKIDfile", "kf")
    assert c.source.startswith("file:")


def test_chain_falls_back_to_role(tmp_path: Path) -> None:
    f = tmp_path / "credentials"
    f.write_text("[other]\nsecret_id = x\n")
    p = provider_for(CloudSettings(credentials_file=str(f), metadata_url="http://127.0.0.1:9/m/"),
                     {})
    assert isinstance(p, RoleProvider)
    assert p.metadata.base_url == "http://127.0.0.1:9/m/"


def test_creds_repr_hides_secret() -> None:
    c = Creds("AKIDx", "super-secret", "tok")
    assert "super-secret" not in repr(c) and "tok" not in repr(c)
