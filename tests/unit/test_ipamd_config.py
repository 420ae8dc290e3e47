"""ipamd.config: flags (both --flag value and --flag=value), env, defaults, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ipamd.config import ConfigError, load


def test_guide_flags_as_separate_args() -> None:
    s = load(["--clusterid", "cls-kjqul1ir", "--claim-expired-duration", "10m0s"], {})
    assert s.cluster_id == "cls-kjqul1ir"
    assert s.cloud.cluster_id == "cls-kjqul1ir"
    assert s.claim_expired_duration == timedelta(minutes=10)


def test_equals_form_and_defaults() -> None:
    s = load(
        ["--clusterid=cls-a0000001", "--enable-ownerref", "--min-prebind=2", "--max-prebind=8"], {}
    )
    assert s.enable_ownerref is True
    assert (s.min_prebind, s.max_prebind) == (2, 8)
    d = load(["--clusterid=cls-a0000001"], {})
    assert d.claim_expired_duration is None  # never
    assert (d.min_prebind, d.max_prebind) == (5, 5)
    assert d.enable_ownerref is False
    assert d.identity


def test_env_and_precedence() -> None:
    env = {
        "TKE_IPAMD_CLUSTERID": "cls-env00001",
        "TKE_IPAMD_MIN_PREBIND": "1",
        "TENCENTCLOUD_SECRET_ID": "AKID",
        "TENCENTCLOUD_SECRET_KEY": "very-secret",
    }
    s = load(["--min-prebind", "3"], env)
    assert s.cluster_id == "cls-env00001" and s.min_prebind == 3
    red = s.redacted()
    assert "very-secret" not in str(red)


def test_cloud_endpoint_points_both_services() -> None:
    s = load(
        [
            "--clusterid",
            "cls-test0001",
            "--cloud-endpoint",
            "127.0.0.1:9",
            "--cloud-protocol",
            "http",
        ],
        {},
    )
    assert s.cloud.vpc_endpoint == s.cloud.cvm_endpoint == "127.0.0.1:9"
    assert s.cloud.protocol == "http"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "--clusterid is required"),
        (
            ["--clusterid", "cls-test0001", "--claim-expired-duration", "ten"],
            "--claim-expired-duration",
        ),
        (["--clusterid", "cls-test0001", "--claim-expired-duration=-1m"], "negative"),
        (["--clusterid", "cls-test0001", "--min-prebind", "x"], "--min-prebind"),
        (
            ["--clusterid", "cls-test0001", "--min-prebind", "9", "--max-prebind", "2"],
            "must not exceed",
        ),
        (["--clusterid", "cls-test0001", "--enable-ownerref", "maybe"], "--enable-ownerref"),
        (["--clusterid", "cls-test0001", "--workers", "0"], "--workers"),
        (["--clusterid", "cls-test0001", "--leader-elect-renew-deadline", "20s"], "renew-deadline"),
    ],
)
def test_bad_values(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(argv, {})
    assert needle in str(err.value)


def test_never_keyword() -> None:
    assert (
        load(
            ["--clusterid", "cls-test0001", "--claim-expired-duration", "never"], {}
        ).claim_expired_duration
        is None
    )
    assert load(
        ["--clusterid", "cls-test0001", "--claim-expired-duration", "0s"], {}
    ).claim_expired_duration == timedelta(0)
