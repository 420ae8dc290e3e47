"""``tke-eni-ipamd``: CLI → settings → app (uvicorn style). Logs the
effective config at start (secrets redacted), serves metrics and health,
stops cleanly on SIGTERM/SIGINT within a time limit."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ipamd.config import ConfigError, Settings, load
from kit import logs
from kit.httpserve import StatusServer
from kit.settings import log_effective

#: libraries that log every request at INFO
QUIET = ("urllib3", "kubernetes", "tencentcloud")


def build_cloud(settings: Settings):  # type: ignore[no-untyped-def]
    """The app's cloud factory: the adapter with the app's hooks (its leader
    fence), its metrics in ipamd's registry (served on /metrics)."""
    from cloud.adapter import TencentCloud
    from cloud.hooks import CallHooks
    from ipamd.metrics import REGISTRY

    def make(hooks: CallHooks) -> TencentCloud:
        return TencentCloud.from_settings(settings.cloud, registry=REGISTRY, hooks=hooks)

    return make


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(argv)
    except ConfigError as exc:
        print(f"tke-eni-ipamd: {exc}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level, settings.log_format, quiet=QUIET)
    log = logging.getLogger("ipamd")
    log_effective(log, "tke-eni-ipamd", settings.redacted())

    from ipamd.app import App
    from ipamd.kube.api import KubeApi, load_configuration
    from ipamd.metrics import REGISTRY

    try:
        kube = KubeApi(load_configuration(settings.kubeconfig))
    except Exception as exc:  # noqa: BLE001 - process boundary
        log.error(
            "cannot load the Kubernetes configuration (%s): %s",
            settings.kubeconfig or "in-cluster",
            exc,
        )
        return 1
    app = App(settings, kube, build_cloud(settings))

    def ready() -> tuple[bool, dict[str, object]]:
        synced = all(i.synced.is_set() for i in app.informers)
        leading = app.leading.is_set()
        ok = synced and (app.ready.is_set() or not leading)
        return ok, {"synced": synced, "leading": leading, "subnets": app.subnets.condition}

    try:
        metrics_srv = StatusServer(settings.metrics_address, registries=[REGISTRY], name="metrics")
        health_srv = StatusServer(
            settings.health_address,
            healthy=lambda: (not app.stop.is_set(), {"ok": not app.stop.is_set()}),
            ready=ready,
            name="health",
        )
        metrics_srv.start()
        health_srv.start()
    except (OSError, ValueError) as exc:
        log.error("cannot serve metrics/health: %s", exc)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        app.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    try:
        rc = app.run()
    finally:
        metrics_srv.stop()
        health_srv.stop()
        kube.close()
    return rc


if __name__ == "__main__":
    sys.exit(main())
