"""ipamd's hooks into the cloud adapter (``cloud.hooks.CallHooks``).

Writes are fenced: before each attempt of a write request, ``may_write``
(the app's: the leader elector's ``is_leader``, or True without election)
must be True, else the request is not sent: ``NotLeaderError`` is raised and
counted in ``tke_ipamd_fenced_cloud_writes_total`` — a process that lost its
Lease, or could not renew it in time, never acts on the cloud beside the new
leader. Every request's outcome is counted in ``tke_ipamd_cloud_calls_total``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cloud.errors import CloudError, is_throttle
from ipamd import metrics

log = logging.getLogger(__name__)

NOT_LEADER = "ipamd.NotLeader"


class NotLeaderError(CloudError):
    """A cloud write refused: this ipamd is not (or no longer surely) the leader."""

    def __init__(self, action: str) -> None:
        super().__init__(
            action,
            NOT_LEADER,
            "this ipamd is not the leader (its Lease is held by another process or was "
            "not renewed within the renew deadline): cloud write refused",
        )


class LeaderFence:
    def __init__(self, may_write: Callable[[], bool]) -> None:
        self.may_write = may_write

    def before_write(self, action: str) -> None:
        if not self.may_write():
            metrics.FENCED_WRITES.labels(action).inc()
            log.error("%s refused: this ipamd is not the leader", action)
            raise NotLeaderError(action)

    def after_call(self, action: str, error: CloudError | None) -> None:
        if error is None:
            metrics.CLOUD_CALLS.labels(action, "ok").inc()
        elif error.code != NOT_LEADER:  # refused before sending: counted as fenced
            kind = "throttled" if is_throttle(error.code) else "error"
            metrics.CLOUD_CALLS.labels(action, kind).inc()
