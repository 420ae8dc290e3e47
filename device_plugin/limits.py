"""Where the ENI limits come from, kept current in a background thread.

1. Resolve the node identity (metadata + overrides), retrying with backoff:
   until then the node advertises no devices — unless ``--instance-type``
   is given: the table's limits for it are advertised after the first
   failed attempt, while the instance id the API needs is still asked of the
   metadata service.
2. ``limits_source=api``: DescribeNetworkInterfaceLimit through the cloud
   layer. While the API is unreachable, use the built-in table for the
   instance type (logged), and retry the API with backoff; its answer then
   replaces the table's.
3. ``limits_source=table``: the built-in table only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from core.instance_type import InstanceTypeError
from core.limits import EniLimits, limits_for_type
from device_plugin.cloudlink import ReaderFactory
from device_plugin.identity import MetadataReader, NodeIdentity, resolve_identity
from device_plugin.settings import Settings

log = logging.getLogger(__name__)


class LimitsResolver:
    def __init__(
        self,
        settings: Settings,
        metadata: MetadataReader,
        reader_factory: ReaderFactory,
        on_limits: Callable[[EniLimits], None],
        on_api_error: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.metadata = metadata
        self.reader_factory = reader_factory
        self.on_limits = on_limits
        self.on_api_error = on_api_error
        self.identity: NodeIdentity | None = None
        self.limits: EniLimits | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()  # limits are final (api or table-only)
        self.identity_retry = 0.5  # first delay (s) between metadata attempts
        self._override_tried = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="dp-limits", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run(self) -> None:
        identity = self._resolve_identity()
        early = self.limits  # the table's, published while the identity was unknown
        if identity is None:
            return
        table = self._table_limits(identity)
        if self.settings.limits_source == "table":
            if table is not None and table != early:
                self._publish(table)
            self.done.set()
            return
        delay = self.settings.limits_retry_interval
        used_table = early is not None and early == table
        while not self._stop.is_set():
            try:
                reader = self.reader_factory(identity, self.settings)
                limits = reader.eni_limits(identity.instance_id)
            except Exception as exc:  # noqa: BLE001 - any failure → table fallback
                self.on_api_error()
                if not used_table and table is not None:
                    self._publish(table)
                    used_table = True
                log.warning(
                    "ENI limits API unreachable; using the built-in table, retrying later",
                    extra={
                        "instance_id": identity.instance_id,
                        "instance_type": identity.instance_type,
                        "error": str(exc),
                        "retry_in_s": delay,
                        "fallback": str(table) if table else None,
                    },
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.settings.limits_retry_max)
                continue
            self._publish(limits)
            self.done.set()
            return

    def _publish(self, limits: EniLimits) -> None:
        self.limits = limits
        log.info(
            "ENI limits",
            extra={
                "enis": limits.enis,
                "ips_per_eni": limits.ips_per_eni,
                "source": limits.source,
                "max_pods": limits.max_pods,
            },
        )
        self.on_limits(limits)

    def _table_from_override(self) -> EniLimits | None:
        """The table's limits for ``--instance-type``, published while the
        metadata service does not answer (None without the flag or for a type
        the table cannot read)."""
        instance_type = self.settings.instance_type.strip()
        if not instance_type:
            return None
        try:
            limits = limits_for_type(instance_type)
        except InstanceTypeError as exc:
            log.error("no table limits for --instance-type", extra={"error": str(exc)})
            return None
        log.info(
            "advertising the table's limits for --instance-type until the node identity is known",
            extra={"instance_type": instance_type},
        )
        self._publish(limits)
        return limits

    def _resolve_identity(self) -> NodeIdentity | None:
        delay = self.identity_retry
        while not self._stop.is_set():
            try:
                identity = resolve_identity(self.settings, self.metadata)
            except Exception as exc:  # noqa: BLE001 - keep waiting, never crash-loop
                if not self._override_tried:
                    self._override_tried = True
                    self._table_from_override()
                log.warning(
                    "node identity unknown; advertising "
                    + (
                        "the table's limits for --instance-type"
                        if self.limits is not None
                        else "no devices"
                    )
                    + " until the metadata service answers (or set --instance-id/--instance-type)",
                    extra={"error": str(exc), "retry_in_s": delay},
                )
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 30.0)
                continue
            self.identity = identity
            log.info(
                "node identity",
                extra={
                    "instance_id": identity.instance_id,
                    "instance_type": identity.instance_type,
                    "zone": identity.zone,
                    "region": identity.region,
                },
            )
            return identity
        return None

    def _table_limits(self, identity: NodeIdentity) -> EniLimits | None:
        try:
            return limits_for_type(identity.instance_type)
        except InstanceTypeError as exc:
            log.error("no table limits for this instance type", extra={"error": str(exc)})
            return None
