"""Run the default network's plugins for pods that do not ask for an ENI IP
(e.g. Debian's ``bridge`` + ``host-local`` in Global Router mode), the way a
runtime runs a chain: each plugin found in CNI_PATH, given the network's
name and cniVersion, the previous result on ADD and the final one on
DEL/CHECK (DEL in reverse order)."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from .cnitypes import ERR_DELEGATE, ERR_INVALID_CONFIG, CniError, CniRequest

DELEGATE_KEY = "delegatePlugins"
TIMEOUT = 60.0


def delegates_of(conf: dict[str, Any]) -> list[dict[str, Any]]:
    raw = conf.get(DELEGATE_KEY) or []
    if not isinstance(raw, list) or not all(isinstance(d, dict) and d.get("type") for d in raw):
        raise CniError(
            ERR_INVALID_CONFIG, f"{DELEGATE_KEY} must be a list of plugin configs with a type"
        )
    return raw


def find_plugin(plugin_type: str, cni_path: str) -> str:
    for directory in cni_path.split(":"):
        if not directory:
            continue
        candidate = os.path.join(directory, plugin_type)
        if os.access(candidate, os.X_OK):
            return candidate
    raise CniError(
        ERR_INVALID_CONFIG, f"delegate plugin {plugin_type!r} not found in CNI_PATH {cni_path!r}"
    )


def _exec(req: CniRequest, command: str, conf: dict[str, Any]) -> dict[str, Any] | None:
    binary = find_plugin(str(conf["type"]), req.path)
    env = dict(os.environ)
    env.update({k: v for k, v in req.raw_env.items() if k.startswith("CNI_")})
    env["CNI_COMMAND"] = command
    try:
        proc = subprocess.run(
            [binary],
            input=json.dumps(conf).encode(),
            env=env,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CniError(ERR_DELEGATE, f"delegate {conf['type']} {command} failed: {exc}") from exc
    out = proc.stdout.strip()
    if proc.returncode != 0:
        try:
            err = json.loads(out or proc.stderr)
            raise CniError(
                int(err.get("code", ERR_DELEGATE)),
                f"delegate {conf['type']}: {err.get('msg', '')}",
                str(err.get("details", "")),
            )
        except (ValueError, AttributeError):
            raise CniError(
                ERR_DELEGATE,
                f"delegate {conf['type']} {command} exited {proc.returncode}: "
                f"{(out or proc.stderr)[:500]!r}",
            ) from None
    if not out:
        return None
    try:
        result = json.loads(out)
    except ValueError as exc:
        raise CniError(ERR_DELEGATE, f"delegate {conf['type']} printed no JSON: {exc}") from exc
    return result if isinstance(result, dict) else None


def _conf_for(
    req: CniRequest, plugin: dict[str, Any], prev: dict[str, Any] | None
) -> dict[str, Any]:
    conf = dict(plugin)
    conf["cniVersion"] = req.cni_version
    conf["name"] = req.conf.get("name", "")
    if "runtimeConfig" in req.conf:
        conf.setdefault("runtimeConfig", req.conf["runtimeConfig"])
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def run(req: CniRequest, delegates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Run ``req.command`` through the delegate chain; the ADD result or None."""
    if req.command == "ADD":
        prev = req.prev_result
        for plugin in delegates:
            prev = _exec(req, "ADD", _conf_for(req, plugin, prev)) or prev
        return prev
    if req.command == "DEL":
        for plugin in reversed(delegates):
            _exec(req, "DEL", _conf_for(req, plugin, req.prev_result))
        return None
    if req.command == "CHECK":
        for plugin in delegates:
            _exec(req, "CHECK", _conf_for(req, plugin, req.prev_result))
        return None
    return None
