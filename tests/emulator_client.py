"""The product's cloud client pointed at a running emulator (tests only).

The emulator (``vpcsim``) knows nothing of the product: a handle offers only the
environment a client reads (``client_env()``). This module builds the product's
adapter from it, with fast task polling for tests:

    with run_emulator() as emu:
        cloud = cloud_for(emu)                      # cloud.adapter.TencentCloud
        cloud = cloud_for(emu, cluster_id="cls-test0001", max_attempts=3)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from cloud.adapter import TencentCloud
from cloud.settings import CloudSettings, from_env


class EmulatorAddress(Protocol):
    def client_env(self) -> dict[str, str]: ...


def cloud_settings(emu: EmulatorAddress, **overrides: Any) -> CloudSettings:
    """CloudSettings from the emulator's client environment, tuned for tests."""
    base = replace(
        from_env(emu.client_env()),
        cluster_id="cls-sim00001",
        rate_fraction=1.0,
        task_poll_s=0.025,
        task_poll_max_s=0.1,
        backoff_base_s=0.02,
        backoff_max_s=0.5,
        task_timeout_s=30,
    )
    return replace(base, **overrides)


def cloud_for(emu: EmulatorAddress, **overrides: Any) -> TencentCloud:
    """The product's adapter talking to the emulator."""
    return TencentCloud.from_settings(cloud_settings(emu, **overrides))
