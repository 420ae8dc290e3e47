"""``--device-plugin``: the node's device plugin served in the agent's process.

One Python process per node instead of two saves an interpreter, its shared
libraries and the imports both load (prometheus_client, ssl, logging, ...):
docs/node.md, "Footprint". The plugin is the same ``DevicePluginManager`` that
``tke-eni-device-plugin`` runs (its own gRPC server, kubelet registration,
ListAndWatch, /metrics, /healthz, /readyz on its own address), configured by
its ``TKE_ENI_DP_*`` environment variables only (the agent's flags are the
agent's); it reads the agent's capacity file as it does in its own container.

This module is the one place the agent reaches into another component (an
import-linter exception in setup.cfg, "Components are independent"): the
device plugin is imported only when the flag is on, so an agent without it
never loads gRPC.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger(__name__)


class DevicePluginError(RuntimeError):
    """The device plugin's settings are wrong (names the variable)."""


class Embedded(Protocol):
    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


def embedded(environ: Mapping[str, str] | None = None) -> Embedded:
    """The device plugin, configured from ``TKE_ENI_DP_*`` (not started)."""
    from device_plugin.manager import DevicePluginManager
    from device_plugin.settings import SettingsError, load

    try:
        settings = load([], environ)
    except SettingsError as exc:
        raise DevicePluginError(f"--device-plugin: {exc}") from exc
    log.info(
        "device plugin in this process",
        extra={
            "plugin_dir": settings.device_plugin_dir,
            "capacity_file": settings.capacity_file,
            "metrics": settings.metrics_bind_address,
        },
    )
    return DevicePluginManager(settings)
