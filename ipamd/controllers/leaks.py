"""Leaked ENIs: which cloud ENI the reconcile loop may delete, and when.

An ENI is deleted as leaked only when all of these hold — anything less and
it may be another cluster's, or work in flight:

* tagged with our cluster id AND our creator (``tke-eni-ipamd``);
* in our VPC (the accepted subnet decision's; unknown VPC: nothing is deleted);
* no VpcENI record, no live node of ours owns it, no claimed IP on it (by
  its VpcIP, or by a claim whose status names the address);
* AVAILABLE and detached, or attached to an instance that no longer exists in
  the cloud (an existing instance that is not our node is someone else's);
* it has looked leaked, pass after pass, for ``--leaked-eni-min-age`` (the
  clock starts when this process first sees it so: a restart or a hand-over
  only delays a deletion).

``--leaked-eni-dry-run`` reports instead of deleting. Each deletion (or
would-be deletion) gets a Warning event on the ipamd Deployment and a count in
``tke_ipamd_leaked_enis_total{result}``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cloud.errors import NotFoundError
from cloud.models import Eni
from core import names
from core.ids import EniId, InstanceId
from ipamd import metrics
from ipamd.controllers.enis import claim_naming
from ipamd.deps import Deps
from ipamd.kube import events as ev

log = logging.getLogger(__name__)

AVAILABLE = "AVAILABLE"
DEPLOYMENT_REF = ev.ObjectRef(
    "Deployment", names.COMPONENT_IPAMD, names.CONFIGMAP_NAMESPACE, "", "apps/v1"
)


def not_ours_to_delete(eni: Eni, cluster_id: str, vpc_id: str | None) -> str | None:
    """Why ``eni`` must not be deleted as leaked (tags, VPC, state), or None."""
    tags = eni.tags
    cluster, creator = tags.get(names.TAG_CLUSTER_ID), tags.get(names.TAG_CREATOR)
    checks = (
        (eni.primary, "it is a primary ENI"),
        (cluster != cluster_id, f"tagged {names.TAG_CLUSTER_ID}={cluster!r}, not ours"),
        (
            creator != names.TAG_CREATOR_VALUE,
            f"tagged {names.TAG_CREATOR}={creator!r}, not {names.TAG_CREATOR_VALUE!r}",
        ),
        (not vpc_id, "our VPC is not known yet (no accepted subnet decision)"),
        (eni.vpc_id != vpc_id, f"it is in {eni.vpc_id}, ours is {vpc_id}"),
        (eni.state != AVAILABLE, f"it is {eni.state}"),
    )
    return next((why for failed, why in checks if failed), None)


class LeakSweeper:
    def __init__(self, deps: Deps, detach: Callable[[str, str], None]) -> None:
        self.d = deps
        self.detach = detach
        self._first_seen: dict[str, float] = {}  # ENI id -> when it first looked leaked
        self._reported: set[str] = set()  # "left alone" / "waiting" already logged
        self._dry_reported: set[str] = set()  # dry-run event and count already given
        self._candidates: set[str] = set()  # looked leaked in the current pass

    def begin_pass(self) -> None:
        self._candidates = set()

    def end_pass(self) -> None:
        """Forget ENIs that no longer look leaked (adopted, gone): their clock restarts."""
        for eni_id in list(self._first_seen):
            if eni_id not in self._candidates:
                del self._first_seen[eni_id]
                self._reported.discard(eni_id)

    def _instance_gone(self, instance_id: str) -> bool:
        try:
            found = self.d.cloud.describe_instances([InstanceId(instance_id)])
        except NotFoundError:
            return True
        return not found

    def _claimed(self, eni: Eni) -> str | None:
        """A static IP on ``eni``, by its VpcIP or by a claim naming it (a claim
        whose VpcIP went — ``kubectl delete vip``, a crash mid-move — still owns
        its address: the records alone do not say the ENI holds none)."""
        st = self.d.state
        for a in eni.secondary_ips:
            rec = st.ip(a)
            if rec is not None and rec.claim:
                return f"it holds {a}, claim {rec.claim}'s static IP"
            claim = claim_naming(st, a)
            if claim is not None:
                return f"it holds {a}, which claim {claim.key} names"
        return None

    def consider(self, eni: Eni) -> bool:
        """``eni`` has no record and no live node of ours: delete it if it is
        certainly ours and certainly leaked. Returns True when deleted."""
        s = self.d.settings
        decision = self.d.state.decision
        why_not = not_ours_to_delete(eni, s.cluster_id, decision.vpc_id if decision else None)
        if why_not is None:
            why_not = self._claimed(eni)
        if why_not is None and eni.instance_id and not self._instance_gone(eni.instance_id):
            why_not = f"it is attached to {eni.instance_id}, which exists and is not our node"
        if why_not is not None:
            if eni.eni_id not in self._reported:
                self._reported.add(eni.eni_id)
                log.info(
                    "reconcile: ENI %s has no record but is left alone: %s", eni.eni_id, why_not
                )
            return False
        self._candidates.add(eni.eni_id)
        now = time.monotonic()
        first = self._first_seen.setdefault(eni.eni_id, now)
        min_age = s.leaked_eni_min_age.total_seconds()
        where = (
            f"attached to {eni.instance_id}, which no longer exists"
            if eni.instance_id
            else ("detached")
        )
        what = (
            f"ENI {eni.eni_id} in {eni.subnet_id} ({len(eni.secondary_ips)} IPs, "
            f"{names.TAG_CLUSTER_ID}={s.cluster_id}, {where}) has no VpcENI record and no "
            "live node"
        )
        if now - first < min_age:
            if eni.eni_id not in self._reported:
                self._reported.add(eni.eni_id)
                log.info(
                    "reconcile: %s; deleted if it still looks leaked after "
                    "--leaked-eni-min-age %ss",
                    what,
                    f"{min_age:.0f}",
                )
            return False
        if s.leaked_eni_dry_run:
            if eni.eni_id not in self._dry_reported:
                self._dry_reported.add(eni.eni_id)
                metrics.LEAKED_ENIS.labels("dry-run").inc()
                self.d.events.emit(
                    DEPLOYMENT_REF,
                    ev.WARNING,
                    "LeakedENIWouldDelete",
                    f"{what}: would be deleted (--leaked-eni-dry-run)",
                )
            return False
        if eni.instance_id:
            self.detach(eni.eni_id, eni.instance_id)
        try:
            self.d.cloud.delete_eni(EniId(eni.eni_id))
        except NotFoundError:
            log.info("reconcile: leaked ENI %s was gone already", eni.eni_id)
        self._first_seen.pop(eni.eni_id, None)
        self._candidates.discard(eni.eni_id)
        metrics.LEAKED_ENIS.labels("deleted").inc()
        self.d.events.emit(DEPLOYMENT_REF, ev.WARNING, "LeakedENIDeleted", f"{what}: deleted")
        return True
