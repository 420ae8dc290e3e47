"""``tke-eni-ip-webhook``: CLI → settings → TLS server.

``tke-eni-ip-webhook [flags]`` serves; ``tke-eni-ip-webhook certs [flags]``
provisions the serving certificate (``webhook.provision``) and exits.

Start-up: log the effective settings, load the TLS files (exit 2 with the
reason when they are unusable), serve the admission endpoint on --port
(HTTPS) and health/readiness/metrics on --health-port (plain HTTP), stop on
SIGTERM/SIGINT (servers close, in-flight requests finish), exit 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from kit import logs
from kit.httpserve import StatusServer
from kit.settings import log_effective

from . import config, provision, provision_config
from .app import create_app
from .metrics import Metrics

log = logging.getLogger("tke_eni_webhook")


def serve(settings: config.Settings) -> int:
    from kit.tlsserve import TLSConfigError

    from .server import admission_listener

    logs.setup(settings.log_level, settings.log_format)
    log_effective(log, "tke-eni-ip-webhook", settings)
    if settings.insecure_http:
        logs.event(log, logging.WARNING, "--insecure-http: plain HTTP (benchmarks and "
                   "debugging only; the API server calls webhooks over HTTPS only)")
    metrics = Metrics()
    app = create_app(settings, metrics)
    try:
        server = admission_listener(app, settings, metrics)
    except TLSConfigError as exc:
        logs.event(log, logging.ERROR, "cannot serve TLS", error=str(exc))
        return 2
    except OSError as exc:
        logs.event(log, logging.ERROR, "cannot listen", port=settings.port, error=str(exc))
        return 1
    try:
        health = (
            None
            if settings.health_port < 0
            else StatusServer(
                f"{settings.host}:{settings.health_port}",
                registries=[metrics.registry],
                # stateless: ready as soon as it serves (the TLS files were loaded at start)
                healthy=lambda: True,
                ready=lambda: True,
                name="webhook-health",
                read_timeout=settings.read_timeout,
            )
        )
    except OSError as exc:
        server.stop()
        logs.event(log, logging.ERROR, "cannot listen", port=settings.health_port, error=str(exc))
        return 1

    def stop(signum: int, _frame: FrameType | None) -> None:
        logs.event(log, logging.INFO, "stopping", signal=signal.Signals(signum).name)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:  # a signal from here on ends in the finally below (the ports are bound already)
        if health is not None:
            health.start()
        logs.event(log, logging.INFO, "serving", address=f"{settings.host}:{server.port}",
                   scheme=server.scheme, path=settings.mutate_path, eni_only=settings.eni_only,
                   health_address=f"{settings.host}:{health.port}" if health is not None else None)
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if health is not None:
            health.stop()
    logs.event(log, logging.INFO, "stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["certs"]:
        return provision.main(provision_config.parse(args[1:]))
    return serve(config.parse(args))


if __name__ == "__main__":
    sys.exit(main())
