"""Install the ``tke-route-eni`` executable and the conflist, atomically.

The executable is a 4-line launcher (``#!<python> -I -S``) that imports the
shim from ``<bin>/.tke-route-eni/`` where it sits with a precompiled .pyc
(this machine sets PYTHONDONTWRITEBYTECODE, so nothing is compiled for us).
A conflist of the same name that another CNI wrote is left alone unless
overwriting is asked for."""

from __future__ import annotations

import json
import logging
import os
import py_compile
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

from core.names import CNI_PLUGIN_TYPE

from .checkpoint import write_atomic

log = logging.getLogger(__name__)

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "plugin" / "tke_route_eni.py"
LIB_DIR_NAME = ".tke-route-eni"
MODULE = "tke_route_eni"
DEFAULT_CHAIN: list[dict[str, Any]] = [
    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
]


class InstallError(Exception):
    pass


def launcher_text(python: str, lib_dir: str, socket_path: str) -> str:
    return (
        f"#!{python} -IS\n"  # one shebang argument: -I -S combined
        "import sys\n"
        f"sys.path.insert(0, {lib_dir!r})\n"
        f"from {MODULE} import run\n"
        f"run({socket_path!r})\n"
    )


def install_plugin(bin_dir: str, python: str, socket_path: str) -> str:
    """Write the shim (+ .pyc) and its launcher; returns the executable's path."""
    lib_dir = os.path.join(bin_dir, LIB_DIR_NAME)
    os.makedirs(lib_dir, exist_ok=True)
    source = os.path.join(lib_dir, MODULE + ".py")
    write_atomic(source, PLUGIN_SOURCE.read_bytes(), 0o644)
    cfile = cache_from_source(source)
    os.makedirs(os.path.dirname(cfile), exist_ok=True)
    tmp = cfile + ".tmp"
    try:
        py_compile.compile(
            source,
            cfile=tmp,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    except py_compile.PyCompileError as exc:
        raise InstallError(f"cannot compile {source}: {exc}") from exc
    os.replace(tmp, cfile)
    exe = os.path.join(bin_dir, CNI_PLUGIN_TYPE)
    write_atomic(exe, launcher_text(python, lib_dir, socket_path).encode(), 0o755)
    os.chmod(exe, 0o755)  # noqa: S103 - the runtime must execute it
    log.info("plugin installed", extra={"path": exe, "python": python})
    return exe


def build_conflist(
    name: str,
    *,
    cni_version: str,
    socket_path: str,
    chain: list[dict[str, Any]],
    delegates: list[dict[str, Any]],
    host_veth_prefix: str,
) -> dict[str, Any]:
    ours: dict[str, Any] = {
        "type": CNI_PLUGIN_TYPE,
        "agentSocket": socket_path,
        "hostVethPrefix": host_veth_prefix,
    }
    if delegates:
        ours["delegatePlugins"] = delegates
    return {"cniVersion": cni_version, "name": name, "plugins": [ours, *chain]}


def is_ours(conf: Any) -> bool:
    plugins = conf.get("plugins") if isinstance(conf, dict) else None
    if not isinstance(plugins, list) or not plugins or not isinstance(plugins[0], dict):
        return False
    return bool(plugins[0].get("type") == CNI_PLUGIN_TYPE)


def install_conflist(
    conf_dir: str, file_name: str, conflist: dict[str, Any], overwrite: bool
) -> bool:
    """Write the conflist; False when an existing file of another CNI was kept."""
    os.makedirs(conf_dir, exist_ok=True)
    path = os.path.join(conf_dir, file_name)
    data = (json.dumps(conflist, indent=2, sort_keys=True) + "\n").encode()
    try:
        existing = Path(path).read_bytes()
    except FileNotFoundError:
        existing = None
    if existing == data:
        return True
    if existing is not None and not overwrite:
        try:
            theirs = not is_ours(json.loads(existing))
        except ValueError:
            theirs = True
        if theirs:
            log.error(
                "conflist belongs to another CNI: not overwritten (set --cni-conf-overwrite)",
                extra={"path": path},
            )
            return False
    write_atomic(path, data, 0o644)
    others = sorted(
        f
        for f in os.listdir(conf_dir)
        if f < file_name and f.endswith((".conf", ".conflist", ".json"))
    )
    if others:
        log.warning(
            "another CNI config sorts first and wins", extra={"path": path, "first": others[0]}
        )
    log.info("conflist installed", extra={"path": path})
    return True


def load_json_list(path: str, what: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise InstallError(f"cannot read {what} from {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(d, dict) and d.get("type") for d in data):
        raise InstallError(f"{what} in {path} must be a JSON list of plugin configs with a type")
    return data
