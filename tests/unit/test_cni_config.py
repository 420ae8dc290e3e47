"""Agent settings: flag > env > default; bad combinations refused."""

from __future__ import annotations

import pytest

from cni.agent import config


def test_defaults_env_and_flags() -> None:
    cfg = config.parse(["--node-name", "n1"], {})
    assert (cfg.cooldown, cfg.eni_only, cfg.socket) == (150.0, False, "/run/tke-eni-agent/cni.sock")
    assert cfg.cooldown >= 120  # longer than conntrack's SYN_SENT timeout
    env = {"NODE_NAME": "n2", "TKE_ENI_AGENT_COOLDOWN": "200", "TKE_ENI_AGENT_ENI_ONLY": "true"}
    cfg = config.parse([], env)
    assert (cfg.node_name, cfg.cooldown, cfg.eni_only) == ("n2", 200.0, True)
    cfg = config.parse(["--cooldown", "300", "--eni-only", "false"], env)
    assert (cfg.cooldown, cfg.eni_only) == (300.0, False)
    assert "cooldown" in cfg.effective()


@pytest.mark.parametrize(
    "argv",
    [
        ["--ip-source", "carrier-pigeon", "--node-name", "n"],
        ["--ip-source", "file", "--pod-source", "none"],  # no file given
        [],  # kubernetes sources need the node name
    ],
)
def test_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(argv, {})
