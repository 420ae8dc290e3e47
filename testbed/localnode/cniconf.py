"""A node's CNI dirs: a bin dir holding Debian's reference plugins (the agent may add
``tke-route-eni`` next to them) and a conf dir with one conflist."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REFERENCE_PLUGINS = Path("/usr/lib/cni")


def populate_bin_dir(bin_dir: Path, source: Path = REFERENCE_PLUGINS) -> None:
    """Put every reference plugin into ``bin_dir`` (containerd needs ``loopback``) as a
    real file (a hard link, else a copy), as a node image installs them: a container
    that mounts the directory (a CNI DaemonSet running a delegate plugin) can run them,
    where a symlink into the host's /usr/lib/cni would dangle."""
    if not (source / "loopback").exists():
        raise FileNotFoundError(
            f"{source}/loopback missing: install containernetworking-plugins "
            "(run hack/setup.sh (step: apt))")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for plugin in source.iterdir():
        target = bin_dir / plugin.name
        if target.is_symlink():
            target.unlink()  # made by an earlier version of this function
        if not target.exists():
            try:
                os.link(plugin, target)
            except OSError:
                shutil.copy2(plugin, target)


def ptp_conflist(name: str, subnet: str, data_dir: Path) -> dict[str, Any]:
    """Debian's ptp + host-local: the runtime-path proof before our own plugin is used."""
    return {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [{
            "type": "ptp",
            "ipMasq": False,
            "mtu": 1500,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                     "dataDir": str(data_dir), "routes": [{"dst": "0.0.0.0/0"}]},
        }],
    }


def write_conflist(conf_dir: Path, conflist: Mapping[str, Any],
                   filename: str = "10-localnode.conflist") -> Path:
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / filename
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(conflist, indent=2) + "\n")
    tmp.replace(path)
    return path
