"""--host-veth-prefix: a prefix that leaves too little room for the per-pod
hash (IFNAMSIZ is 16 bytes: 15 characters) would give pods the same or
colliding veth names; such a prefix is refused at start with a clear error."""

from __future__ import annotations

import pytest

from cni.agent import config, pool


@pytest.mark.parametrize(
    "prefix",
    [
        "tke0123456789ab",  # 15 characters: no room for a hash, every pod the same name
        "abcdefghijklmn",  # 14: one hex digit, 16 names for every pod on the node
        "abcdefgh",  # 8: only 7 hex digits left
        "",  # every 15-hex-digit link on the host would look like ours
        "tk/e",  # not a valid interface name character
        "tk e",
        "tk:e",
    ],
)
def test_prefix_refused_with_a_clear_error(prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        config.parse(["--node-name", "n", "--host-veth-prefix", prefix], {})
    err = capsys.readouterr().err
    assert "--host-veth-prefix" in err, err


@pytest.mark.parametrize("prefix", ["tke", "veth", "tke-p", "a", "tke_ab1"])
def test_prefix_accepted_and_names_unique(prefix: str) -> None:
    cfg = config.parse(["--node-name", "n", "--host-veth-prefix", prefix], {})
    assert cfg.host_veth_prefix == prefix
    names = {pool.host_veth_name(prefix, "default", f"p{i}", f"c{i}") for i in range(200)}
    assert len(names) == 200
    assert all(len(n) <= 15 and n.startswith(prefix) for n in names)


def test_host_veth_name_refuses_a_prefix_without_room() -> None:
    with pytest.raises(ValueError, match="host veth prefix"):
        pool.host_veth_name("tke0123456789ab", "default", "p", "c")
