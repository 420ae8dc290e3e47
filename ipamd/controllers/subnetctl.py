"""The subnet controller: reads ConfigMap ``kube-system/tke-eni-ipamd``,
checks it against the cloud (``ipamd.rules.subnets``), applies it live, publishes
``kube-system/tke-eni-ipamd-status`` for the scheduler extender, and
refreshes free-IP counts. A missing ConfigMap is a condition (logged, shown
in /readyz detail), not a crash.

The decision in force is never dropped for a passing trouble: it is published
in the status ConfigMap and read back at start (``previous``), a missing
ConfigMap or a refused value keeps it, and while there is none at all (first
start, status unreadable, the cloud not answering) ``state.decision`` stays
None — "unknown" — and the node controller asks nothing back and deletes
nothing."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from cloud.errors import CloudError, NotFoundError
from cloud.models import Subnet
from core import models as m
from core import names
from core.ids import SubnetId, VpcId
from ipamd import metrics
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError
from ipamd.rules import subnets
from ipamd.state import NODE

log = logging.getLogger(__name__)


class SubnetController:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        # zone -> has room, as last published (None: nothing published yet)
        self._zone_room: dict[str, bool] | None = None
        self.condition = "ConfigMap not read yet"
        self._last_config: subnets.SubnetConfig | None = None
        self._last_error = ""
        self._loaded = False  # the previously accepted decision was read back
        self._refusals: list[subnets.Refusal] = []  # refused with no decision in force

    def load_previous(self) -> None:
        """Resume the decision the previous ipamd accepted (from its published
        status). Raises KubeError when the status cannot be read: the caller
        retries, the decision meanwhile stays unknown."""
        if self._loaded:
            return
        ns, name = names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP
        obj = self.d.objects.api.get_or_none(paths.configmap(ns, name))
        self._loaded = True
        text = ((obj or {}).get("data") or {}).get(m.SUBNET_STATUS_KEY, "")
        if not text:
            return
        try:
            previous = subnets.decision_from_statuses(m.load_subnet_statuses(text))
        except (ValueError, TypeError) as exc:
            log.warning(
                "ConfigMap %s/%s: unreadable %s (%s); ignored", ns, name, m.SUBNET_STATUS_KEY, exc
            )
            return
        st = self.d.state
        if previous is None or st.decision is not None:
            return
        st.decision = previous
        log.info(
            "resuming the last accepted subnets (from %s/%s): active %s%s",
            ns,
            name,
            sorted(previous.active),
            f", draining {sorted(previous.draining)}" if previous.draining else "",
        )

    def sync(self) -> None:
        st = self.d.state
        self.load_previous()
        cm_name = f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}"
        data = st.configmap_data
        if data is None:
            self._refusals = []
            if st.decision is not None:
                st.decision.refusals = []
                self.condition = (
                    f"ConfigMap {cm_name} is missing: keeping the last accepted subnets "
                    f"{sorted(st.decision.active)}"
                )
            else:
                self.condition = (
                    f"ConfigMap {cm_name} is missing: no subnet is configured, no ENI is created"
                )
            if self._last_error != self.condition:
                log.warning("%s", self.condition)
                self._last_error = self.condition
            self._publish()
            return
        try:
            config = subnets.parse_configmap(data)
        except subnets.SubnetConfigError as exc:
            self._refuse(str(exc), "InvalidSubnetConfig")
            return
        for w in config.warnings:
            self.d.events.emit(ev.configmap_ref(), ev.WARNING, "DeprecatedSetting", w)
        try:
            facts = self._facts(config)
        except CloudError as exc:
            self.condition = f"cannot check the subnets with the cloud yet: {exc}"
            raise
        previous = st.decision
        decision = subnets.decide(config, facts, previous=previous, in_use=st.subnet_in_use())
        if not decision.accepted:
            for r in decision.refusals:
                self.d.events.emit(ev.configmap_ref(), ev.WARNING, "InvalidSubnet", r.reason)
            self.condition = "refused: " + "; ".join(r.reason for r in decision.refusals)
            # a refusal never installs anything: the decision in force stays, and
            # with none in force the decision stays unknown (nothing is drained)
            self._refusals = decision.refusals
            if previous is not None:
                st.decision = _keep(previous, decision)
            self._publish()
            return
        self._refusals = []
        changed = (
            previous is None
            or set(previous.active) != set(decision.active)
            or set(previous.draining) != set(decision.draining)
        )
        st.decision = decision
        refreshed = bool(st.exhausted & set(decision.active))
        st.exhausted -= set(decision.active)  # fresh counts: let the cloud say again
        self.condition = "ok"
        self._last_error = ""
        self._applied(decision, changed=changed, refreshed=refreshed)
        self._publish()

    def _applied(self, decision: subnets.SubnetDecision, *, changed: bool, refreshed: bool) -> None:
        """An accepted decision is in force: when it changed, say so and queue
        every node; when it changed or full subnets may take IPs again, the
        static IPs waiting for room try again."""
        st = self.d.state
        if changed:
            msg = f"subnets applied: active {sorted(decision.active)}" + (
                f", draining {sorted(decision.draining)}" if decision.draining else ""
            )
            log.info("%s", msg)
            self.d.events.emit(ev.configmap_ref(), ev.NORMAL, "SubnetsApplied", msg)
            for node in st.nodes_with_work():
                st.queue.add(NODE + node)
        if changed or refreshed:
            st.room_appeared()

    def _refuse(self, message: str, reason: str) -> None:
        self.d.events.emit(ev.configmap_ref(), ev.WARNING, reason, message)
        self.condition = f"refused: {message}"
        self._publish()

    def _facts(self, config: subnets.SubnetConfig) -> dict[SubnetId, subnets.SubnetFacts]:
        st = self.d.state
        known = set(st.decision.active) | set(st.decision.draining) if st.decision else set()
        in_use = st.subnet_in_use()
        found = self._describe(config.subnet_ids)
        out: dict[SubnetId, subnets.SubnetFacts] = {}
        for sid in config.subnet_ids:
            sub = found.get(sid)
            foreign: tuple[str, ...] = ()
            ours = 0
            if sub is not None and sid not in known and not in_use.get(sid, 0):
                foreign, ours = self._foreign(sid)
            out[sid] = subnets.SubnetFacts(sub, foreign, ours)
        return out

    def _describe(self, ids: tuple[SubnetId, ...]) -> dict[str, Subnet]:
        """The subnets that exist; one unknown id fails a batch call, so then ask one by one."""
        if not ids:
            return {}
        try:
            return {s.subnet_id: s for s in self.d.cloud.describe_subnets(ids)}
        except CloudError as exc:
            if not (
                isinstance(exc, NotFoundError)
                or exc.code.startswith("ResourceNotFound")
                or exc.code.startswith("InvalidParameterValue")
            ):
                raise
        out: dict[str, Subnet] = {}
        for sid in ids:
            try:
                out.update({s.subnet_id: s for s in self.d.cloud.describe_subnets([sid])})
            except CloudError as exc:
                if not (
                    isinstance(exc, NotFoundError)
                    or exc.code.startswith("ResourceNotFound")
                    or exc.code.startswith("InvalidParameterValue")
                ):
                    raise
        return out

    def _foreign(self, sid: SubnetId) -> tuple[tuple[str, ...], int]:
        """(what in the subnet is not ours, how many ENIs in it are ours)."""
        cluster = self.d.settings.cluster_id
        out = []
        ours = 0
        for eni in self.d.cloud.describe_enis(subnet_id=sid):
            if eni.tags.get(names.TAG_CLUSTER_ID) == cluster:
                if eni.tags.get(names.TAG_CREATOR) == names.TAG_CREATOR_VALUE:
                    ours += 1
                continue
            what: str = eni.eni_id
            if eni.primary and eni.instance_id:
                what = f"instance {eni.instance_id}"
            out.append(what)
        return tuple(out), ours

    def refresh(self) -> None:
        """Free-IP counts of the active and draining subnets; drop empty draining ones."""
        st = self.d.state
        d = st.decision
        if d is None:
            return
        ids = [*d.active, *d.draining]
        if not ids:
            return
        try:
            latest = list(self._describe(tuple(ids)).values())
        except CloudError as exc:
            log.warning("subnet refresh failed: %s", exc)
            return
        subnets.refresh(d, latest, st.subnet_in_use())
        for s in latest:
            if s.available_ips > 0 and s.subnet_id in st.exhausted:
                st.exhausted.discard(s.subnet_id)
                # no longer full: the static IPs waiting in its zone try again
                n = st.room_appeared(zone=s.zone)
                log.info(
                    "subnet %s has %d free IPs again: %d waiting claims queued",
                    s.subnet_id,
                    s.available_ips,
                    n,
                )
        self._publish()

    def _publish(self) -> None:
        """The decision in force (also while the ConfigMap is missing: the
        scheduler extender keeps placing pods, and the next ipamd resumes it)."""
        d = self.d.state.decision
        if d is not None:
            statuses = d.statuses()
        else:
            statuses = subnets.SubnetDecision(
                accepted=False, vpc_id=VpcId(""), refusals=self._refusals
            ).statuses()
        metrics.SUBNETS.labels(m.SUBNET_ACTIVE).set(len(d.active) if d else 0)
        metrics.SUBNETS.labels(m.SUBNET_DRAINING).set(len(d.draining) if d else 0)
        self.d.objects.publish_subnets(statuses)
        if d is not None:
            self._wake_zones(zone_room(statuses, self.d.state.exhausted))

    def _wake_zones(self, room: dict[str, bool]) -> None:
        """Set ``TKEENISubnetRoom`` on the nodes of every zone whose room
        changed since the last publish (not at the first one: nothing is
        pending on a change then). A failed patch is logged and retried at the
        next publish (the zone stays "changed")."""
        previous, self._zone_room = self._zone_room, dict(room)
        if previous is None:
            return
        changed = {
            z for z in set(room) | set(previous) if room.get(z, False) != previous.get(z, False)
        }
        if not changed:
            return
        st = self.d.state
        failed: set[str] = set()
        for _, node in st.nodes.items() if st.nodes is not None else []:
            facts = st.facts.get(node.name)
            zone = node.zone or (facts.zone if facts else "")
            if zone not in changed:
                continue
            try:
                set_room_condition(self.d.objects.api, node.name, zone, room.get(zone, False))
            except KubeError as exc:
                log.warning("could not set %s on node %s: %s", ROOM_CONDITION, node.name, exc)
                failed.add(zone)
        for zone in changed:
            log.info(
                "zone %s %s: nodes marked %s=%s (pending pods are retried)",
                zone,
                "has room again" if room.get(zone, False) else "has no room",
                ROOM_CONDITION,
                room.get(zone, False),
            )
        for zone in failed:  # try again next time
            self._zone_room[zone] = not room.get(zone, False)


ROOM_CONDITION = "TKEENISubnetRoom"


def zone_room(statuses: list[m.SubnetStatus], exhausted: set[str]) -> dict[str, bool]:
    """zone -> an Active subnet of it has free IPs (zones of Draining subnets: False)."""
    room: dict[str, bool] = {}
    for s in statuses:
        if not s.zone:
            continue
        free = s.state == m.SUBNET_ACTIVE and s.available > 0 and s.subnet_id not in exhausted
        room[s.zone] = room.get(s.zone, False) or free
    return room


def set_room_condition(api: KubeApi, node: str, zone: str, ok: bool) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "status": {
            "conditions": [
                {
                    "type": ROOM_CONDITION,
                    "status": "True" if ok else "False",
                    "reason": "SubnetHasFreeIPs" if ok else "NoFreeIPInZone",
                    "message": (
                        f"an Active subnet of zone {zone} has free IPs"
                        if ok
                        else f"no Active subnet of zone {zone} has a free IP"
                    ),
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ]
        }
    }
    api.patch_strategic(paths.node(node) + "/status", body)


def _keep(
    previous: subnets.SubnetDecision, refused: subnets.SubnetDecision
) -> subnets.SubnetDecision:
    previous.refusals = refused.refusals
    return previous
