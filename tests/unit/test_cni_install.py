"""Installing the executable and the conflist (atomic, never over another CNI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cni.agent import install


def conflist() -> dict:  # type: ignore[type-arg]
    return install.build_conflist(
        "tke-route-eni",
        cni_version="1.0.0",
        socket_path="/run/s.sock",
        chain=install.DEFAULT_CHAIN,
        delegates=[{"type": "bridge"}],
        host_veth_prefix="tke",
    )


def test_plugin_installed_with_pyc(tmp_path: Path) -> None:
    exe = install.install_plugin(str(tmp_path), sys.executable, str(tmp_path / "none.sock"))
    assert os.access(exe, os.X_OK)
    assert Path(exe).read_text().splitlines()[0] == f"#!{sys.executable} -IS"
    pyc = list((tmp_path / ".tke-route-eni" / "__pycache__").glob("tke_route_eni.*.pyc"))
    assert len(pyc) == 1
    # runs as a runtime runs it: VERSION works without the agent
    out = subprocess.run(
        [exe],
        input=b'{"cniVersion":"0.4.0"}',
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        check=True,
    )
    assert json.loads(out.stdout)["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    # no agent: ADD says try again later, naming the socket
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0"}
    out = subprocess.run(
        [exe],
        input=b'{"cniVersion":"1.0.0","name":"n","type":"t"}',
        env=env,
        capture_output=True,
        check=False,
    )
    err = json.loads(out.stdout)
    assert out.returncode != 0 and err["code"] == 11 and "none.sock" in err["msg"]
    install.install_plugin(str(tmp_path), sys.executable, "/x.sock")  # re-install over itself
    assert "/x.sock" in Path(exe).read_text()


def test_conflist_written_and_kept_when_foreign(tmp_path: Path) -> None:
    conf = conflist()
    assert conf["plugins"][0] == {
        "type": "tke-route-eni",
        "agentSocket": "/run/s.sock",
        "hostVethPrefix": "tke",
        "delegatePlugins": [{"type": "bridge"}],
    }
    assert install.install_conflist(str(tmp_path), "10-tke.conflist", conf, overwrite=False)
    assert json.loads((tmp_path / "10-tke.conflist").read_text()) == conf
    # ours is updated in place
    conf2 = dict(conf, cniVersion="1.1.0")
    assert install.install_conflist(str(tmp_path), "10-tke.conflist", conf2, overwrite=False)
    assert json.loads((tmp_path / "10-tke.conflist").read_text())["cniVersion"] == "1.1.0"
    # another CNI's file of that name is left alone unless told
    foreign = {"cniVersion": "1.0.0", "name": "flannel", "plugins": [{"type": "flannel"}]}
    (tmp_path / "10-other.conflist").write_text(json.dumps(foreign))
    assert not install.install_conflist(str(tmp_path), "10-other.conflist", conf, overwrite=False)
    assert json.loads((tmp_path / "10-other.conflist").read_text()) == foreign
    (tmp_path / "10-bad.conflist").write_text("not json")
    assert not install.install_conflist(str(tmp_path), "10-bad.conflist", conf, overwrite=False)
    assert install.install_conflist(str(tmp_path), "10-other.conflist", conf, overwrite=True)
    assert json.loads((tmp_path / "10-other.conflist").read_text()) == conf
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
