"""The device plugin's EIP settings (issue 16: the tke.cloud.tencent.com/eip resource):
``--eip`` off by default, ``--eip-socket-name`` and ``--eip-quota-interval`` from flags
and from TKE_ENI_DP_* env vars, and the refusals that name the problem."""

from __future__ import annotations

import pytest

from device_plugin.settings import SettingsError, load


def test_eip_off_by_default() -> None:
    s = load([], {})
    assert (s.eip, s.eip_socket_name, s.eip_quota_interval) == (False, "tke-eip.sock", 60.0)


def test_eip_from_flags_and_env() -> None:
    s = load(["--eip", "true", "--eip-socket-name", "eip.sock", "--eip-quota-interval", "5"], {})
    assert (s.eip, s.eip_socket_name, s.eip_quota_interval) == (True, "eip.sock", 5.0)
    env = {"TKE_ENI_DP_EIP": "true", "TKE_ENI_DP_EIP_QUOTA_INTERVAL": "2.5"}
    s = load([], env)
    assert (s.eip, s.eip_quota_interval) == (True, 2.5)
    assert load(["--eip", "false"], env).eip is False  # the flag beats the env var


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--eip", "true", "--eip-socket-name", "a/b.sock"], "--eip-socket-name"),
        (
            [
                "--eip",
                "true",
                "--eip-socket-name",
                "tke-eni-ip.sock",
                "--socket-name",
                "tke-eni-ip.sock",
            ],
            "--eip-socket-name",
        ),
        (["--eip", "true", "--eip-socket-name", "kubelet.sock"], "--eip-socket-name"),
        (["--eip-quota-interval", "-1"], "eip"),
        (["--eip", "maybe"], "eip"),
    ],
)
def test_bad_eip_settings_are_refused(argv: list[str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load(argv, {})
