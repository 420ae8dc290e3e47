"""ipamd's issue-16 switches: --enable-security-groups, --enable-pod-eip and
--eip-leak-min-age (and --enable-quick-release beside them): off / 5m by default,
set by flag or TKE_IPAMD_* env var, bad values refused naming the flag."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ipamd.config import ConfigError, load

CLUSTER = ["--clusterid", "cls-test0001"]


def test_defaults_are_off() -> None:
    s = load(CLUSTER, {})
    assert (s.enable_security_groups, s.enable_pod_eip, s.enable_quick_release) == (
        False,
        False,
        False,
    )
    assert s.eip_leak_min_age == timedelta(minutes=5)


def test_flags_and_env() -> None:
    s = load(
        [
            *CLUSTER,
            "--enable-security-groups",
            "--enable-pod-eip=true",
            "--eip-leak-min-age",
            "90s",
        ],
        {},
    )
    assert (s.enable_security_groups, s.enable_pod_eip) == (True, True)
    assert s.eip_leak_min_age == timedelta(seconds=90)
    env = {
        "TKE_IPAMD_ENABLE_SECURITY_GROUPS": "true",
        "TKE_IPAMD_ENABLE_POD_EIP": "true",
        "TKE_IPAMD_EIP_LEAK_MIN_AGE": "1h",
    }
    s = load(CLUSTER, env)
    assert (s.enable_security_groups, s.enable_pod_eip) == (True, True)
    assert s.eip_leak_min_age == timedelta(hours=1)
    assert load([*CLUSTER, "--enable-pod-eip=false"], env).enable_pod_eip is False


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([*CLUSTER, "--enable-security-groups", "maybe"], "--enable-security-groups"),
        ([*CLUSTER, "--enable-pod-eip", "yes please"], "--enable-pod-eip"),
        ([*CLUSTER, "--eip-leak-min-age", "soon"], "--eip-leak-min-age"),
        ([*CLUSTER, "--eip-leak-min-age=-5m"], "--eip-leak-min-age"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(argv, {})
    assert needle in str(err.value)
