"""``tke-eni-device-plugin``: CLI → settings → manager; SIGTERM/SIGINT stop it
cleanly (stream closed, socket removed) within a bounded time."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from device_plugin.manager import DevicePluginManager
from device_plugin.settings import SettingsError, load
from kit import logs
from kit.settings import log_effective

log = logging.getLogger("device_plugin")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(argv)
    except SettingsError as exc:
        print(f"tke-eni-device-plugin: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format)
    log_effective(log, "tke-eni-device-plugin", settings)
    manager = DevicePluginManager(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            manager.start()
        except OSError as exc:  # e.g. metrics port taken
            log.error("cannot start", extra={"error": str(exc)})
            return 1
        while not stop.wait(1.0):
            if not manager.alive:  # an unexpected error ended the loop: let the pod restart
                log.error("main loop ended unexpectedly; exiting")
                manager.stop()
                return 1
        manager.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
