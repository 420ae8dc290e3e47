"""The claim controller: static IPs of pods annotated
``vpc-ip-claim-delete-policy: Never``. ``sync(ns/name)`` creates the claim for
a new pod, then carries out the one step ``ipamd.rules.claims.decide`` returns:
allocate, reserve for the new pod UID, move the IP to the pod's new node
(MigratePrivateIpAddress; unassign + assign when the source ENI is gone),
mark Reserved when the pod goes, release on expiry / owner deletion /
``kubectl delete vipc`` (the finalizer holds the claim until the cloud IP is
really returned)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from cloud.errors import CloudError
from cloud.models import Eni
from core import claimpolicy, names
from core import models as m
from core.ids import EniId, VpcId
from core.models import ENI_PHASE_DETACHED, parse_rfc3339, rfc3339
from ipamd import metrics
from ipamd.controllers.enis import ip_spec
from ipamd.controllers.nodes import NodeController
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.rules import claims
from ipamd.rules.records import ClaimRec, IpRec, PodRec
from ipamd.state import CLAIM, NODE, NodeFacts

log = logging.getLogger(__name__)

#: the Warning when a move would take an address that is not the claim's
CONFLICT_REASON = "StaticIPConflict"


def _where(rec: IpRec | None) -> tuple[str, ...] | None:
    """What a move acts on in a record: where it says the address is, whose it
    is, and the release request with its answer."""
    if rec is None:
        return None
    return (rec.node, rec.eni, rec.claim, rec.state, rec.release_id, rec.granted_id, rec.phase)


class ClaimController:
    def __init__(self, deps: Deps, nodes: NodeController) -> None:
        self.d = deps
        self.nodes = nodes
        self._owner_cache: dict[str, tuple[float, bool]] = {}
        self._moving_since: dict[str, float] = {}

    # --- helpers ---
    def _pod_ref(self, claim: ClaimRec, pod: PodRec | None) -> ev.ObjectRef:
        return ev.pod_ref(claim.namespace, claim.name, pod.uid if pod else "")

    def _status(self, c: ClaimRec, **changes: str) -> None:
        st = m.VpcIpClaimStatus(
            phase=c.phase,
            ip=c.ip,
            subnet_id=c.subnet,
            zone=c.zone,
            node_name=c.node,
            pod_uid=c.pod_uid,
            last_seen=c.last_seen,
            expires_at=c.expires_at,
        )
        for k, v in changes.items():
            setattr(st, k, v)
        self.d.crds.claim_status(c.namespace, c.name, st)

    def _owner_gone(self, c: ClaimRec) -> bool:
        if not self.d.settings.enable_ownerref or c.owner is None:
            return False
        now = time.monotonic()
        cached = self._owner_cache.get(c.key)
        if cached is not None and now - cached[0] < 5:
            return cached[1]
        gone = not self.d.objects.owner_exists(c.namespace, c.owner)
        self._owner_cache[c.key] = (now, gone)
        return gone

    def _ip_view(self, c: ClaimRec) -> claims.IpView | None:
        rec = self.d.state.ip(c.ip) if c.ip else None
        if rec is None or rec.claim != c.key:
            return None
        user = rec.pod_uid if rec.phase in (m.IP_PHASE_IN_USE, m.IP_PHASE_COOLDOWN) else ""
        return claims.IpView(
            node_name=rec.node,
            node_alive=self.d.state.node_alive(rec.node),
            reserved_uid=rec.reserved_uid,
            user_uid=user,
            released=rec.release_granted,
            releasing=rec.state == m.IP_STATE_RELEASING,
        )

    def _pod_view(self, pod: PodRec | None) -> claims.PodView | None:
        if pod is None or pod.terminal:
            return None
        zone = ""
        if pod.node:
            facts = self.d.state.facts.get(pod.node)
            node = self.d.state.node(pod.node)
            zone = facts.zone if facts else (node.zone if node else "")
        return claims.PodView(pod.uid, pod.node, zone, pod.deleting, pod.policy)

    # --- entry point ---
    def sync(self, key: str) -> None:
        st = self.d.state
        c = st.claim(key)
        pod = st.pod(key)
        if c is None:
            self._maybe_create(key, pod)
            return
        if not c.has_finalizer and not c.deleting:
            self.d.crds.add_claim_finalizer(c.namespace, c.name, [])
            return
        if (
            pod is not None
            and not c.deleting
            and not pod.deleting
            and not pod.terminal
            and pod.policy_reason == claimpolicy.REASON_NEEDS_STATEFULSET
        ):
            # a claim for a pod no StatefulSet owns (made before the rule, or its
            # owner changed): dropped; a running pod keeps its address as a
            # dynamic IP (as with `kubectl delete vipc`), a free one goes back
            self.d.events.emit(
                self._pod_ref(c, pod), ev.WARNING, pod.policy_reason, pod.policy_message
            )
            self.release(c, pod, "static IPs apply to StatefulSet pods only")
            return
        view = claims.ClaimView(
            key=c.key,
            phase=c.phase,
            ip=c.ip,
            zone=c.zone,
            node_name=c.node,
            pod_uid=c.pod_uid,
            last_seen=parse_rfc3339(c.last_seen),
            expired_duration=c.expired_duration,
            deleting=c.deleting,
        )
        pv = self._pod_view(pod)
        iv = self._ip_view(c)
        owner_gone = self._owner_gone(c) if not claims.pod_alive(pv) else False
        decision = claims.decide(
            view,
            pv,
            iv,
            default_duration=(self.d.settings.claim_expired_duration,),
            now=datetime.now(UTC),
            owner_gone=owner_gone,
        )
        step = decision.step
        self._decided(key, decision)
        releasing = iv is not None and iv.releasing
        if claims.needs_confirming(
            c.phase, c.ip, step, record_releasing=releasing
        ) and not self._confirmed(c, pod):
            return  # the record was wrong and is fixed (or waits): the next sync decides again
        if step is claims.Step.ALLOCATE and pod is not None:
            self.allocate(c, pod)
        elif step is claims.Step.RESERVE_FOR_POD and pod is not None:
            self.reserve_for_pod(c, pod)
        elif step is claims.Step.MARK_BOUND and pod is not None:
            self._bound(c, pod)
        elif step is claims.Step.MIGRATE and pod is not None:
            self.migrate(c, pod)
        elif step is claims.Step.MARK_RESERVED:
            self.mark_reserved(c)
        elif step is claims.Step.RELEASE:
            self.release(c, pod, decision.reason)
        elif step is claims.Step.WAIT:
            self._waiting(c, pod, decision.reason)
        elif step is claims.Step.NONE and c.phase == m.CLAIM_PHASE_RESERVED:
            self._requeue_at_expiry(c)

    def _decided(self, key: str, decision: claims.Decision) -> None:
        log.debug("claim %s: %s (%s)", key, decision.step.value, decision.reason)
        if decision.step not in (claims.Step.ALLOCATE, claims.Step.MIGRATE):
            self.d.state.room_found(key)  # it waits for no room (any more)

    def _waiting(self, c: ClaimRec, pod: PodRec | None, reason: str) -> None:
        """Why the claim waits: an Event (best effort) and ``status.message``
        (durable; the claim's next status write clears it)."""
        self.d.events.emit(self._pod_ref(c, pod), ev.NORMAL, "WaitingForIP", reason)
        if c.message != reason:
            self._status(c, message=reason)

    def _runs_unclaimed(self, pod: PodRec) -> str:
        """Why ``pod`` must get no claim ("" when it may): its claim was deleted
        while it ran (a VpcIP of its node carries the durable mark,
        core.models), or it already runs with a dynamic IP (its agent reports a
        VpcIP without a claim in use by its UID: a claim would give it a
        second address), or the kubelet reports an address for it (status.podIP)
        while no record says so (the mark went with a deleted VpcIP)."""
        if not pod.node or not pod.uid:
            return ""
        for rec in self.d.state.node_ips(pod.node):
            if rec.unclaimed_uid == pod.uid:
                return f"its claim was deleted while it ran with {rec.ip}"
            if not rec.claim and rec.phase == m.IP_PHASE_IN_USE and rec.pod_uid == pod.uid:
                return f"it runs with the dynamic IP {rec.ip}"
        if pod.ip:  # the kubelet says it runs with an address, though no record says so
            return f"it runs with {pod.ip}"
        return ""

    def _maybe_create(self, key: str, pod: PodRec | None) -> None:
        self.d.state.room_found(key)  # no claim: nothing waits for room
        if pod is None or pod.deleting or pod.terminal:
            return
        if pod.static and (why := self._runs_unclaimed(pod)):
            log.debug("claim %s: none for pod uid %s: %s", key, pod.uid, why)
            return
        if pod.policy_reason:  # core.claimpolicy: an invalid value, or not a StatefulSet's pod
            self.d.events.emit(
                ev.pod_ref(pod.namespace, pod.name, pod.uid),
                ev.WARNING,
                pod.policy_reason,
                pod.policy_message,
            )
        if not pod.static:
            return  # Immediate, invalid, or not a StatefulSet's pod: a dynamic IP
        duration, err = claims.validate_annotation(pod.expired_annotation)
        if err:
            self.d.events.emit(
                ev.pod_ref(pod.namespace, pod.name, pod.uid),
                ev.WARNING,
                claimpolicy.REASON_INVALID_DURATION,
                err,
            )
        owner = None
        if self.d.settings.enable_ownerref and pod.owner is not None:
            owner = {
                "apiVersion": pod.owner.api_version,
                "kind": pod.owner.kind,
                "name": pod.owner.name,
                "uid": pod.owner.uid,
                "blockOwnerDeletion": False,
            }
        self.d.crds.create_claim(
            pod.namespace,
            pod.name,
            m.VpcIpClaimSpec(policy=names.CLAIM_POLICY_NEVER, expired_duration=duration),
            owner=owner,
        )
        log.info("claim %s created for pod uid %s", key, pod.uid)

    # --- steps ---
    def _recorded_for(self, c: ClaimRec) -> IpRec | None:
        """A VpcIP that already carries this claim (the claim's status write
        failed after the record was made, or ipamd restarted in between)."""
        found = self.d.state.claim_ips(c.key)
        return found[0] if found else None

    def _adopt_recorded(self, c: ClaimRec, rec: IpRec) -> None:
        """The claim's status names the IP its record already gives it: no
        second IP. The next sync places it (bound, reserve, or move)."""
        self._status(
            c,
            phase=m.CLAIM_PHASE_BOUND,
            ip=rec.ip,
            subnet_id=rec.subnet,
            zone=rec.zone,
            node_name=rec.node,
            pod_uid=rec.reserved_uid,
            last_seen=rfc3339(datetime.now(UTC)),
            expires_at="",
        )
        log.warning(
            "claim %s: status named no IP but VpcIP %s (node %s) carries the claim: adopted",
            c.key,
            rec.ip,
            rec.node,
        )

    def allocate(self, c: ClaimRec, pod: PodRec) -> None:
        start = time.monotonic()
        node = pod.node
        existing = self._recorded_for(c)
        if existing is not None:
            self._adopt_recorded(c, existing)
            return
        with self.d.state.node_lock(node):
            existing = self._recorded_for(c)  # made by another worker meanwhile
            if existing is not None:
                self._adopt_recorded(c, existing)
                return
            rec = self.d.state.node(node)
            if rec is None:
                return
            facts = self.nodes.facts(rec)
            if facts is None:
                return
            # waiting from here on: room appearing on the node or in the zone
            # (also while this try runs) queues the claim again (ClusterState)
            self.d.state.wait_for_room(c.key, node, facts.zone)
            eni_rec = self.nodes.eni_with_room(node, facts)
            if eni_rec is None:
                self.d.events.emit(
                    self._pod_ref(c, pod),
                    ev.WARNING,
                    "WaitingForSubnet",
                    f"no ENI with room on node {node} and none can be added "
                    f"(zone {facts.zone}); the static IP waits",
                )
                return
            try:
                addrs = self.d.cloud.assign_ips(
                    EniId(eni_rec.eni_id), count=1, client_token=str(uuid.uuid4())
                )
            except CloudError as exc:
                if exc.code.startswith("ResourceInsufficient"):
                    self.d.state.exhausted.add(eni_rec.subnet)
                    self.d.events.emit(
                        self._pod_ref(c, pod),
                        ev.WARNING,
                        "WaitingForSubnet",
                        f"subnet {eni_rec.subnet} is out of IPs: {exc.code}",
                    )
                    return
                raise
            ip = addrs[0]
            self.d.crds.create_ip(
                ip,
                ip_spec(
                    node,
                    eni_rec.eni_id,
                    eni_rec.subnet,
                    eni_rec.zone,
                    claim=c.key,
                    reserved_uid=pod.uid,
                ),
            )
        self._status(
            c,
            phase=m.CLAIM_PHASE_BOUND,
            ip=ip,
            subnet_id=eni_rec.subnet,
            zone=eni_rec.zone,
            node_name=node,
            pod_uid=pod.uid,
            last_seen=rfc3339(datetime.now(UTC)),
            expires_at="",
        )
        self.d.state.room_found(c.key)
        metrics.ALLOCATION.labels("claim").observe(time.monotonic() - start)
        self.d.events.emit(
            self._pod_ref(c, pod),
            ev.NORMAL,
            "IPAssigned",
            f"static IP {ip} ({eni_rec.subnet}, {eni_rec.zone}) reserved for this pod on {node}",
        )

    def reserve_for_pod(self, c: ClaimRec, pod: PodRec) -> None:
        # a release request taken back: its id goes too, so an answer to it
        # can never be read as the answer to a later one
        self.d.crds.patch_ip_spec(
            c.ip, {"reservedPodUid": pod.uid, "state": m.IP_STATE_ASSIGNED, "releaseId": None}
        )
        self._bound(c, pod)

    def _bound(self, c: ClaimRec, pod: PodRec) -> None:
        rec = self.d.state.ip(c.ip)
        self._status(
            c,
            phase=m.CLAIM_PHASE_BOUND,
            node_name=pod.node,
            pod_uid=pod.uid,
            last_seen=rfc3339(datetime.now(UTC)),
            expires_at="",
            subnet_id=rec.subnet if rec else c.subnet,
            zone=rec.zone if rec else c.zone,
        )
        since = self._moving_since.pop(c.key, None)
        if since is not None:
            metrics.ALLOCATION.labels("move").observe(time.monotonic() - since)

    def mark_reserved(self, c: ClaimRec) -> None:
        now = datetime.now(UTC)
        last = now
        rec = self.d.state.ip(c.ip) if c.ip else None
        if rec is not None and rec.claim == c.key and rec.state == m.IP_STATE_RELEASING:
            # the pod went while its IP was asked back for a move (the record was
            # confirmed against the cloud first): the move is off, the request
            # taken back (its id too) and the IP stays reserved where it is; a
            # granted request left open would never be finished
            self.d.crds.patch_ip_spec(c.ip, {"state": m.IP_STATE_ASSIGNED, "releaseId": None})
            log.info("claim %s: pod gone mid-move; IP %s stays on %s", c.key, c.ip, rec.node)
            c = replace(c, node=rec.node)
        if c.phase == m.CLAIM_PHASE_BOUND:
            # ipamd may have been down when the pod went: the agent's last update is older
            rec = self.d.state.ip(c.ip)
            seen = parse_rfc3339(rec.updated) if rec and rec.pod_uid == c.pod_uid else None
            if seen is not None and seen < now:
                last = seen
        duration = claims.effective_duration(
            c.expired_duration, self.d.settings.claim_expired_duration
        )
        at = claims.expires_at(last, duration)
        self._status(
            c,
            phase=m.CLAIM_PHASE_RESERVED,
            last_seen=rfc3339(last),
            expires_at=rfc3339(at) if at else "",
        )
        log.info(
            "claim %s: pod gone, IP %s reserved%s",
            c.key,
            c.ip,
            f" until {rfc3339(at)}" if at else " (no expiry)",
        )
        if at is not None:
            self.d.state.queue.add_after(CLAIM + c.key, max(0.0, (at - now).total_seconds()) + 0.05)

    def _requeue_at_expiry(self, c: ClaimRec) -> None:
        at = parse_rfc3339(c.expires_at)
        duration = claims.effective_duration(
            c.expired_duration, self.d.settings.claim_expired_duration
        )
        want = claims.expires_at(parse_rfc3339(c.last_seen), duration)
        if want is not None and (at is None or abs((want - at).total_seconds()) > 1):
            self._status(c, expires_at=rfc3339(want))  # the flag changed since
            at = want
        if at is not None:
            left = (at - datetime.now(UTC)).total_seconds()
            self.d.state.queue.add_after(CLAIM + c.key, max(0.05, left + 0.05))

    # --- where the claimed address really is ---
    def _locate(self, ip: str) -> tuple[Eni | None, Eni | None]:
        """(our ENI holding ``ip``, a foreign ENI holding it). Ours: tagged with
        our cluster id. A foreign ENI's address is never moved."""
        st = self.d.state
        vpc = st.decision.vpc_id if st.decision else None
        found = self.d.cloud.describe_enis(address=ip, vpc_id=VpcId(vpc) if vpc else None)
        cluster = self.d.settings.cluster_id
        ours = [e for e in found if e.tags.get(names.TAG_CLUSTER_ID) == cluster]
        foreign = [e for e in found if e.tags.get(names.TAG_CLUSTER_ID) != cluster]
        return (ours[0] if ours else None), (foreign[0] if foreign else None)

    def _conflict(self, c: ClaimRec, pod: PodRec | None, kind: str, message: str) -> None:
        """Refuse to move an address that is not recorded as this claim's."""
        metrics.CLAIM_CONFLICTS.labels(kind).inc()
        self.d.events.emit(self._pod_ref(c, pod), ev.WARNING, CONFLICT_REASON, message)
        log.error("claim %s: %s", c.key, message)

    def _node_of_eni(self, eni: Eni) -> str:
        st = self.d.state
        erec = st.enis.get(eni.eni_id) if st.enis else None
        if erec is not None:
            return erec.node
        iid = eni.instance_id or eni.tags.get(names.TAG_INSTANCE_ID, "")
        if iid and st.nodes is not None:
            for n in st.nodes.values():
                if n.instance_id == iid:
                    return n.name
        return ""

    def _confirmed(self, c: ClaimRec, pod: PodRec | None) -> bool:
        """While a claim is ``Migrating`` (its intent is written before any cloud
        call of the move) the cloud may be ahead of the claim's VpcIP: the move
        happened, the record writes after it did not (an error, a crash, a
        restart). Before any step trusts the record, ask the cloud where the
        address is (among our cluster's ENIs) and make the record say so.
        True: the record agrees with the cloud (or there is none to check: the
        steps locate a missing record themselves). False: the record was
        re-pointed to the truth (status cleared), the address was put back on
        the ENI its record names (a fallback move stopped between unassign and
        assign), or nothing can be done yet (an event says why); the claim is
        synced again and decides from the corrected record, which finishes or
        reverses the move through the normal release handshake."""
        st = self.d.state
        first = st.ip(c.ip)
        if first is None or first.claim != c.key:
            return True
        with st.node_lock(first.node):  # as the reconcile loop and the move take it
            rec = st.ip(c.ip)
            if rec is None or rec.claim != c.key or rec.node != first.node:
                st.queue.add(CLAIM + c.key)
                return False  # changed meanwhile: decide again
            ours, foreign = self._locate(c.ip)
            if ours is not None and ours.eni_id == rec.eni:
                return True
            if ours is not None:
                return self._repoint(c, pod, rec, ours)
            if foreign is not None:
                self._conflict(
                    c,
                    pod,
                    "foreign-eni",
                    f"static IP {c.ip} is held by ENI {foreign.eni_id}, which is not tagged "
                    f"{names.TAG_CLUSTER_ID}={self.d.settings.cluster_id}; it is not taken",
                )
                return False
            eni = st.enis.get(rec.eni) if st.enis else None
            if eni is None:
                # the ENI it names is gone and no ENI holds the address: the record
                # describes nothing; without it the claim locates and re-assigns it
                self.d.crds.delete_ip(c.ip)
                why = f"its record names ENI {rec.eni}, which is gone: record dropped"
            else:
                # a fallback move (unassign + assign) stopped in between: the move
                # is reversed; its ENI takes the address back
                self.d.cloud.assign_ips(
                    EniId(rec.eni), addresses=[c.ip], client_token=str(uuid.uuid4())
                )
                why = f"assigned back to {rec.eni} (node {rec.node}), the ENI its record names"
            metrics.RECONCILE_FIXES.labels("claimed-ip-confirmed").inc()
            log.warning("claim %s (%s): IP %s is on no ENI; %s", c.key, c.phase, c.ip, why)
        st.queue.add(CLAIM + c.key)
        return False

    def _repoint(self, c: ClaimRec, pod: PodRec | None, rec: IpRec, eni: Eni) -> bool:
        """The record of a claimed address lags the cloud: make it name the ENI
        (and node) that holds the address, with the agent's status cleared
        (``create_ip``'s re-point path) and no release request open."""
        st = self.d.state
        node = self._owner_node(c, pod, eni)
        if not node:
            return False
        self._record_claimed(c, node, eni, rec.reserved_uid)
        metrics.RECONCILE_FIXES.labels("claimed-ip-confirmed").inc()
        log.warning(
            "claim %s (%s): IP %s is on %s (node %s) in the cloud, its record said %s "
            "(node %s): record re-pointed to the cloud's answer",
            c.key,
            c.phase,
            c.ip,
            eni.eni_id,
            node,
            rec.eni,
            rec.node,
        )
        st.queue.add(NODE + rec.node)
        st.queue.add(CLAIM + c.key)
        return False

    def _owner_node(self, c: ClaimRec, pod: PodRec | None, eni: Eni) -> str:
        """The node whose ENI holds the claimed address; "" (and a Warning on the
        pod) when the ENI belongs to no known node."""
        node = self._node_of_eni(eni)
        if not node:
            self.d.events.emit(
                self._pod_ref(c, pod),
                ev.WARNING,
                "WaitingForIP",
                f"static IP {c.ip} is on ENI {eni.eni_id}, which belongs to no known node; "
                "the reconcile loop sorts it out",
            )
        return node

    def _record_claimed(self, c: ClaimRec, node: str, eni: Eni, reserved_uid: str) -> None:
        """Record the claim's address as the claim's, on the ENI (and node) that holds it."""
        self.d.crds.create_ip(
            c.ip,
            ip_spec(
                node, eni.eni_id, eni.subnet_id, eni.zone, claim=c.key, reserved_uid=reserved_uid
            ),
        )

    def _unrecorded(self, c: ClaimRec, pod: PodRec) -> bool:
        """The claim's address has no VpcIP (a crash mid-move, ``kubectl delete
        vip``). On one of our ENIs: record it as this claim's where it is (the
        next sync asks that node's agent for it); on a foreign ENI: refuse;
        nowhere (a move interrupted between unassign and assign): True, the
        caller assigns it to the pod's node."""
        ours, foreign = self._locate(c.ip)
        if ours is not None:
            node = self._owner_node(c, pod, ours)
            if not node:
                return False
            with self.d.state.node_lock(node):
                self._record_claimed(c, node, ours, c.pod_uid)
            metrics.RECONCILE_FIXES.labels("claimed-ip-recorded").inc()
            log.warning(
                "claim %s: IP %s had no record; found on %s (node %s): recorded as the claim's",
                c.key,
                c.ip,
                ours.eni_id,
                node,
            )
            return False
        if foreign is not None:
            self._conflict(
                c,
                pod,
                "foreign-eni",
                f"static IP {c.ip} is held by ENI {foreign.eni_id}, which is not tagged "
                f"{names.TAG_CLUSTER_ID}={self.d.settings.cluster_id}; it is not taken",
            )
            return False
        return True

    def _source_eni(self, c: ClaimRec, pod: PodRec, rec: IpRec) -> str | None:
        """The ENI to move the address from: the one its record names, checked
        in the cloud ("" when no ENI holds it); None (with an event) when the
        address is elsewhere: a foreign ENI, or another ENI of ours."""
        ours, foreign = self._locate(c.ip)
        if foreign is not None and ours is None:
            self._conflict(
                c,
                pod,
                "foreign-eni",
                f"static IP {c.ip} is held by ENI {foreign.eni_id}, which is not tagged "
                f"{names.TAG_CLUSTER_ID}={self.d.settings.cluster_id}; it is not taken",
            )
            return None
        if ours is not None and ours.eni_id != rec.eni:
            self.d.events.emit(
                self._pod_ref(c, pod),
                ev.WARNING,
                "WaitingForIP",
                f"static IP {c.ip} is on {ours.eni_id}, its record says {rec.eni}; "
                "waiting for the reconcile loop to correct the record",
            )
            return None
        return ours.eni_id if ours is not None else ""

    def migrate(self, c: ClaimRec, pod: PodRec) -> None:  # noqa: PLR0911, PLR0912 - one exit per refusal
        st = self.d.state
        dest = pod.node
        rec = st.ip(c.ip)
        if rec is not None and rec.claim != c.key:
            holder = f"claim {rec.claim}" if rec.claim else "a dynamic IP"
            use = f", in use by pod uid {rec.pod_uid}" if rec.used else ""
            self._conflict(
                c,
                pod,
                "record",
                f"static IP {c.ip} is recorded as {holder} on node {rec.node or '?'}{use}; "
                "it is not moved (fix or delete the VpcIPClaim)",
            )
            return
        if rec is None and not self._unrecorded(c, pod):
            return
        self._moving_since.setdefault(c.key, time.monotonic())
        if c.phase != m.CLAIM_PHASE_MIGRATING or c.node != dest:
            self._status(c, phase=m.CLAIM_PHASE_MIGRATING, node_name=dest)  # intent first
            self.d.events.emit(
                self._pod_ref(c, pod),
                ev.NORMAL,
                "IPMoving",
                f"moving static IP {c.ip} from {rec.node if rec else '?'} to {dest}",
            )
        # 1. the old node's agent must let go of it (its answer to this request)
        if rec is not None and st.node_alive(rec.node) and rec.node != dest:
            if rec.state != m.IP_STATE_RELEASING or not rec.release_id:
                self.nodes.request_release(rec, f"claim {c.key} moves to {dest}")
                return
            if not rec.release_granted:
                return  # the IP informer requeues us when the agent answers
        # 2. both nodes locked, in order: nothing else writes this address meanwhile
        subnet = rec.subnet if rec else c.subnet
        first, second = sorted({dest, rec.node if rec else dest})[0], dest
        if rec is not None and rec.node != dest:
            first, second = sorted((dest, rec.node))
        with st.node_lock(first), st.node_lock(second):
            if _where(st.ip(c.ip)) != _where(rec):
                # the record changed since it was read (the reconcile loop re-pointed
                # it, the agent answered): decide again from what it says now
                st.queue.add(CLAIM + c.key)
                return
            # 3. where the address really is: only on the ENI its record names
            src = self._source_eni(c, pod, rec) if rec is not None else ""
            if src is None:
                return
            # 4. a destination ENI in the IP's subnet
            node = st.node(dest)
            if node is None:
                return
            facts = self.nodes.facts(node)
            if facts is None:
                return
            dest_eni = self._dest_eni(c, pod, facts, subnet)
            if dest_eni is None:
                return
            # 5. move it in the cloud. From here until the claim is Bound, the
            # record may lag the cloud (an error or a crash below): the claim is
            # Migrating, so no step trusts the record before asking the cloud
            # (``_confirmed``)
            dest_eni = self.nodes.enis.move_to(c.ip, src, dest, dest_eni)
            # 6. the records follow (create_ip over a left-over record clears its status)
            if rec is not None:
                self.d.crds.delete_ip(c.ip)
            self.d.crds.create_ip(
                c.ip,
                ip_spec(
                    dest,
                    dest_eni,
                    subnet,
                    facts.zone,
                    claim=c.key,
                    reserved_uid=pod.uid,
                ),
            )
        if rec is not None and rec.node != dest:
            st.queue.add(NODE + rec.node)  # its ENI may be empty now
        c2 = st.claim(c.key) or c
        self._bound(c2, pod)
        self.d.events.emit(
            self._pod_ref(c, pod),
            ev.NORMAL,
            "IPMoved",
            f"static IP {c.ip} moved to {dest} ({dest_eni}) for pod uid {pod.uid}",
        )

    def _dest_eni(self, c: ClaimRec, pod: PodRec, facts: NodeFacts, subnet: str) -> str | None:
        """An attached ENI of the pod's node in the IP's subnet with room, or a new
        one; None (with an event) when the node cannot take it (the claim then
        waits for room there, ClusterState)."""
        self.d.state.wait_for_room(c.key, pod.node, facts.zone)
        rec = self.nodes.eni_with_room(pod.node, facts, subnet=subnet)
        if rec is None:
            self.d.events.emit(
                self._pod_ref(c, pod),
                ev.WARNING,
                "WaitingForIP",
                f"node {pod.node} has no ENI with room in subnet {subnet} and cannot add one",
            )
            return None
        self.d.state.room_found(c.key)
        return rec.eni_id

    def _keep_unrecorded(self, c: ClaimRec, pod: PodRec, rec: IpRec | None) -> IpRec | None:
        """The claim of a pod that keeps running is deleted while the claim's
        address has no record of the claim (``kubectl delete vip`` too, or the
        record re-created as warm): the address stays the pod's, so the durable
        mark (core.models) goes on a record of it — patched onto the claimless
        record, or a record created where the cloud has the address (on the
        pod's node only). Without a mark, a later sync would make the running
        pod a new claim and a second address."""
        if rec is not None:
            other_user = rec.used and rec.pod_uid not in ("", pod.uid)
            if rec.unclaimed_uid == pod.uid or other_user or rec.node != pod.node:
                return rec
            self.d.crds.patch_ip_spec(c.ip, {"unclaimedPodUid": pod.uid})
        else:
            ours, _ = self._locate(c.ip)
            if ours is None or self._node_of_eni(ours) != pod.node:
                return None  # not on the pod's node: nothing it could keep
            spec = ip_spec(pod.node, ours.eni_id, ours.subnet_id, ours.zone)
            spec.unclaimed_pod_uid = pod.uid
            with self.d.state.node_lock(pod.node):
                self.d.crds.create_ip(c.ip, spec)
            metrics.RECONCILE_FIXES.labels("unclaimed-ip-recorded").inc()
        log.warning(
            "claim %s deleted while its pod %s runs; IP %s had no record of the claim: "
            "marked as the pod's dynamic IP",
            c.key,
            pod.uid,
            c.ip,
        )
        return self.d.state.ip(c.ip)

    def release(self, c: ClaimRec, pod: PodRec | None, why: str) -> None:
        st = self.d.state
        rec = st.ip(c.ip) if c.ip else None
        if (
            c.ip
            and (rec is None or not rec.claim)
            and pod is not None
            and not pod.deleting
            and not pod.terminal
            and pod.uid == c.pod_uid
            and pod.node
        ):
            rec = self._keep_unrecorded(c, pod, rec)
        if rec is not None and rec.claim == c.key:
            alive = st.node_alive(rec.node)
            in_use = rec.phase in (m.IP_PHASE_IN_USE, m.IP_PHASE_COOLDOWN)
            if alive and in_use and pod is not None and not pod.deleting and rec.pod_uid == pod.uid:
                # kubectl delete vipc of a running pod: it keeps the IP as a dynamic
                # one; the durable mark (one write with the claim's removal) keeps
                # ipamd (after a restart too) from claiming it again and tells the
                # agent that this pod UID is dynamic now (core.models)
                self.d.crds.patch_ip_spec(
                    c.ip, {"claim": None, "reservedPodUid": None, "unclaimedPodUid": pod.uid}
                )
                log.info(
                    "claim %s: %s; IP %s stays with the running pod as a dynamic IP",
                    c.key,
                    why,
                    c.ip,
                )
            else:
                if alive and (rec.state != m.IP_STATE_RELEASING or not rec.release_id):
                    self.nodes.request_release(rec, f"claim {c.key}: {why}")
                    return
                if alive and not rec.release_granted:
                    return  # waiting for the agent's answer to this request
                with st.node_lock(rec.node):
                    self.nodes.enis.unassign(rec.eni, [c.ip])
                    self.d.crds.delete_ip(c.ip)
                st.queue.add(NODE + rec.node)
                eni = st.enis.get(rec.eni) if st.enis else None
                if eni is not None and eni.phase == ENI_PHASE_DETACHED:
                    st.queue.add(NODE + eni.node)
        self._owner_cache.pop(c.key, None)
        self._moving_since.pop(c.key, None)
        self.d.crds.remove_claim_finalizer(c.namespace, c.name)
        if not c.deleting:
            self.d.crds.delete_claim(c.namespace, c.name)
        self.d.events.emit(
            ev.pod_ref(c.namespace, c.name),
            ev.NORMAL,
            "IPReleased",
            f"static IP {c.ip or '(none)'} of claim {c.key} released: {why}",
        )
        log.info("claim %s released (%s), IP %s", c.key, why, c.ip)
