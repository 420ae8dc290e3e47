"""ENI and IP operations shared by the node and claim controllers: create +
attach an ENI (intent recorded before the attach), detach + delete, phase
records, unassign tolerant of already-gone resources, and the VpcIP spec.
Batching (10 IPs per call), the cluster tag and what "already gone" means
are the cloud adapter's (``gone_ok``)."""

from __future__ import annotations

import logging
import uuid

from cloud.errors import CloudError
from cloud.models import Eni, Subnet
from core import cidr, names
from core import models as m
from core.ids import EniId, InstanceId, VpcId
from ipamd import metrics
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.kube import paths
from ipamd.rules import pool
from ipamd.rules.records import ClaimRec, EniRec
from ipamd.rules.subnets import SubnetDecision
from ipamd.state import CLAIM, ClusterState, NodeFacts

log = logging.getLogger(__name__)

SUBNET_EXHAUSTED_CODES = ("ResourceInsufficient.Subnet", "ResourceInsufficient")


def ip_spec(
    node: str,
    eni: str,
    subnet: str,
    zone: str,
    *,
    claim: str = "",
    reserved_uid: str = "",
) -> m.VpcIpSpec:
    return m.VpcIpSpec(
        node_name=node,
        eni_id=eni,
        subnet_id=subnet,
        zone=zone,
        state=m.IP_STATE_ASSIGNED,
        claim=claim,
        reserved_pod_uid=reserved_uid,
    )


def claim_naming(st: ClusterState, address: str) -> ClaimRec | None:
    """The claim whose status names ``address`` (claims are few: a scan)."""
    if st.claims is None:
        return None
    return next((c for c in st.claims.values() if c.ip == address and not c.deleting), None)


def record_claimed(d: Deps, node: str, eni: Eni, address: str, claim: ClaimRec) -> None:
    """Record ``address`` (on ``eni`` of ``node``) as ``claim``'s and queue the claim: a
    claim's address whose record went (a crash mid-move, ``kubectl delete vip``) stays the
    claim's, never a warm dynamic IP."""
    spec = ip_spec(
        node, eni.eni_id, eni.subnet_id, eni.zone, claim=claim.key, reserved_uid=claim.pod_uid
    )
    d.crds.create_ip(address, spec)
    d.state.queue.add(CLAIM + claim.key)


class EniOps:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def unassign(self, eni_id: str, addrs: list[str]) -> None:
        """Return ``addrs`` to the subnet; the ENI or the IPs gone already is done."""
        self.d.cloud.unassign_ips(EniId(eni_id), addrs, gone_ok=True)

    def exhausted(self, name: str, subnet: str, exc: CloudError) -> None:
        self.d.state.exhausted.add(subnet)
        self.d.events.emit(
            ev.node_ref(name),
            ev.WARNING,
            "SubnetExhausted",
            f"subnet {subnet} has no free IP left ({exc.code}); add a subnet to "
            f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME}",
        )

    def create_eni(
        self, name: str, facts: NodeFacts, *, want: int, subnet_id: str | None = None
    ) -> Eni | None:
        """Give node ``name`` one more ENI: in ``subnet_id``, else the usable
        subnet of its zone with the most free IPs. The VpcENI record (the
        intent) is written before the attach, so a crash in between leaves a
        record the reconcile loop finishes or undoes. None: nothing created
        (no decision, no subnet: a Warning event says why)."""
        decision = self.d.state.decision
        if decision is None:
            return None
        if subnet_id is None:
            subnet_id = self._pick_subnet(name, facts.zone, decision)
        sub = self.d.state.subnet(subnet_id) if subnet_id else None
        if sub is None:
            return None
        token = str(uuid.uuid4())
        eni = self._create_in_cloud(
            name, facts, sub, vpc_id=decision.vpc_id, want=want, token=token
        )
        if eni is None:
            return None
        status = self._record_intent(name, facts, sub, decision.vpc_id, eni)
        self._attach(name, facts, eni, token)
        index = self._record_attached(name, sub, eni, status)
        self.d.events.emit(
            ev.node_ref(name),
            ev.NORMAL,
            "ENIAttached",
            f"ENI {eni.eni_id} ({sub.subnet_id}, {len(eni.secondary_ips)} IPs) attached as "
            f"device {index}",
        )
        return eni

    def _pick_subnet(self, name: str, zone: str, decision: SubnetDecision) -> str | None:
        """The usable subnet of ``zone`` with the most free IPs; None (with a
        Warning event on the node) when the zone has none or all are exhausted."""
        usable = decision.usable_in_zone(zone)
        open_ = [s for s in usable if s.subnet_id not in self.d.state.exhausted]
        candidates = [(s.subnet_id, s.available_ips) for s in open_]
        chosen = pool.choose_subnet(candidates)
        if chosen is None:
            reason, message = (
                ("SubnetExhausted", f"every configured subnet of zone {zone} is out of IPs")
                if usable
                else ("NoSubnetInZone", f"no subnet configured for zone {zone}")
            )
            self.d.events.emit(ev.node_ref(name), ev.WARNING, reason, f"{message}; no ENI created")
        return chosen

    def _create_in_cloud(
        self, name: str, facts: NodeFacts, sub: Subnet, *, vpc_id: str, want: int, token: str
    ) -> Eni | None:
        """CreateNetworkInterface with the first IPs; None when the subnet is
        exhausted (marked, with a Warning event)."""
        groups = self.d.eni_security_groups
        try:
            return self.d.cloud.create_eni(
                security_group_ids=groups(name, facts.instance_id) if groups else (),
                vpc_id=VpcId(vpc_id),
                subnet_id=sub.subnet_id,
                name=f"{self.d.settings.cluster_id}-{name}"[:60],
                description=f"{names.COMPONENT_IPAMD} node {name}"[:60],
                secondary_ip_count=pool.first_batch(want, facts.limits.ips_per_eni),
                client_token=token,
                instance_id=InstanceId(facts.instance_id),
            )
        except CloudError as exc:
            if exc.code in SUBNET_EXHAUSTED_CODES:
                self.exhausted(name, sub.subnet_id, exc)
                return None
            raise

    def _record_intent(
        self, name: str, facts: NodeFacts, sub: Subnet, vpc_id: str, eni: Eni
    ) -> m.VpcEniStatus:
        """The VpcENI record, phase Attaching: written before the attach."""
        spec = m.VpcEniSpec(
            node_name=name,
            instance_id=facts.instance_id,
            subnet_id=sub.subnet_id,
            vpc_id=vpc_id,
            zone=sub.zone,
        )
        status = m.VpcEniStatus(
            phase=m.ENI_PHASE_ATTACHING,
            mac=eni.mac.lower(),
            primary_ip=eni.primary_ip or "",
            subnet_cidr=sub.cidr,
            gateway=str(cidr.gateway(sub.cidr)),
            ip_capacity=facts.limits.ips_per_eni,
        )
        self.d.crds.create_eni(spec, status, eni.eni_id)
        return status

    def _attach(self, name: str, facts: NodeFacts, eni: Eni, token: str) -> None:
        """Attach; a refusal that will not change (quota, zone) deletes the ENI."""
        try:
            self.d.cloud.attach_eni(
                eni.eni_id, InstanceId(facts.instance_id), client_token=token + "-attach"
            )
        except CloudError as exc:
            self.d.events.emit(
                ev.node_ref(name),
                ev.WARNING,
                "ENIAttachFailed",
                f"could not attach {eni.eni_id} to {facts.instance_id}: {exc}",
            )
            if not exc.retryable:
                self.delete_eni(eni.eni_id, None)
            raise

    def _record_attached(
        self, name: str, sub: Subnet, eni: Eni, status: m.VpcEniStatus
    ) -> int | None:
        """Phase Attached with the device index the cloud reports, then one
        VpcIP per secondary IP; returns the device index."""
        described = self.d.cloud.describe_enis(eni_ids=[eni.eni_id])
        index = described[0].device_index if described else None
        status.phase = m.ENI_PHASE_ATTACHED
        status.device_index = index
        self.d.crds.eni_status(eni.eni_id, status)
        for a in eni.secondary_ips:
            self.d.crds.create_ip(a, ip_spec(name, eni.eni_id, sub.subnet_id, sub.zone))
        return index

    # --- deleting an ENI: only what the cloud says is empty ---
    def delete_if_empty(self, rec: EniRec, instance_id: str | None) -> bool:
        """Delete ``rec``'s ENI only if a fresh describe, right before the delete,
        shows one of our ENIs holding no secondary address. The records alone
        never decide: an address moved in whose VpcIP write failed (or not yet
        seen) would go with the ENI. Any address found is recorded first (as
        its claim's when a claim names it) and the ENI kept. Call under the
        node's lock. Returns True when deleted (or found gone)."""
        fresh = self.d.cloud.describe_enis(eni_ids=[EniId(rec.eni_id)])
        eni = fresh[0] if fresh else None
        if eni is None:  # gone already: only the record is left
            self.d.crds.delete_eni(rec.eni_id)
            log.info("node %s: ENI %s is gone from the cloud: record dropped", rec.node, rec.eni_id)
            return True
        if eni.tags.get(names.TAG_CLUSTER_ID) != self.d.settings.cluster_id:
            log.error(
                "node %s: ENI %s is not tagged %s=%s in the cloud; not deleted",
                rec.node,
                rec.eni_id,
                names.TAG_CLUSTER_ID,
                self.d.settings.cluster_id,
            )
            return False
        if eni.secondary_ips:
            for a in sorted(eni.secondary_ips):
                self.record_found(rec.node, eni, a)
            metrics.RECONCILE_FIXES.labels("eni-not-empty").inc()
            log.warning(
                "node %s: ENI %s has no VpcIP but holds %s in the cloud: not deleted",
                rec.node,
                rec.eni_id,
                list(eni.secondary_ips),
            )
            return False
        self.delete_eni(rec.eni_id, instance_id)
        return True

    def record_found(self, node: str, eni: Eni, address: str) -> None:
        """An address the cloud shows on our ENI ``eni`` of ``node``: give it a
        record if it has none — the claim's when a claim names it (it must never
        become a warm IP), else a warm dynamic IP. A record that exists (in the
        apiserver, if not yet in the informer) is left for the reconcile loop."""
        st = self.d.state
        rec = st.ip(address)
        if rec is not None:
            if rec.claim:
                st.queue.add(CLAIM + rec.claim)
            return  # recorded elsewhere: the reconcile loop corrects the record
        current = self.d.crds.api.get_or_none(paths.vpc_ip(address))
        if current is not None:  # written, not seen yet: never overwritten from a stale view
            self.d.crds.ips.apply(current)
            return
        claim = claim_naming(st, address)
        if claim is not None:
            record_claimed(self.d, node, eni, address, claim)
            log.warning(
                "node %s: IP %s on %s had no record; claim %s names it: recorded as its",
                node,
                address,
                eni.eni_id,
                claim.key,
            )
            return
        self.d.crds.create_ip(address, ip_spec(node, eni.eni_id, eni.subnet_id, eni.zone))
        log.warning(
            "node %s: IP %s on %s had no record: recorded as warm", node, address, eni.eni_id
        )

    def delete_eni(self, eni_id: str, instance_id: str | None) -> None:
        """Detach (when attached) and delete; callers have checked the cloud
        (``delete_if_empty``) or own the ENI's whole content (a create undone)."""
        rec = self.d.state.enis.get(eni_id) if self.d.state.enis else None
        if rec is not None and instance_id:
            if rec.phase != m.ENI_PHASE_DETACHING:
                # written once: a retry rewriting it would requeue the node at
                # once (its own write) and defeat the failure backoff
                self.set_phase(rec, m.ENI_PHASE_DETACHING)
            self.detach(eni_id, instance_id)
        self.d.cloud.delete_eni(EniId(eni_id), gone_ok=True)
        self.d.crds.delete_eni(eni_id)
        log.info("deleted ENI %s", eni_id)

    def detach(self, eni_id: str, instance_id: str) -> None:
        # a fresh ClientToken per call: a fixed one (per ENI and instance) is
        # answered from the cloud's idempotency cache once the ENI has been
        # re-attached, detaching nothing ("attached, detach it first" forever).
        # A replay after a lost reply needs no token: detaching a detached ENI
        # is refused as not attached, which counts as done (``gone_ok``).
        self.d.cloud.detach_eni(
            EniId(eni_id), InstanceId(instance_id), client_token=str(uuid.uuid4()), gone_ok=True
        )

    def set_phase(self, rec: EniRec, phase: str) -> None:
        self.d.crds.eni_status(
            rec.eni_id,
            m.VpcEniStatus(
                phase=phase,
                mac=rec.mac,
                primary_ip=rec.primary_ip,
                device_index=rec.device_index or None,
                ip_capacity=rec.capacity or None,
            ),
        )

    # --- node removal ---

    def move_to(self, ip: str, src_eni: str, dest: str, dest_eni: str) -> str:
        """Move ``ip`` onto ``dest_eni``; returns the ENI of ``dest`` that holds it."""
        if src_eni == dest_eni:
            return dest_eni
        try:
            self.move(ip, src_eni, dest_eni)
        except CloudError:
            # a move replayed after a crash: the IP may already be on the node
            where = self.locate(ip)
            if where and where in {e.eni_id for e in self.d.state.node_enis(dest)}:
                return where
            raise
        return dest_eni

    def locate(self, ip: str) -> str:
        vpc = self.d.state.decision.vpc_id if self.d.state.decision else None
        found = self.d.cloud.describe_enis(address=ip, vpc_id=vpc)
        return found[0].eni_id if found else ""

    def move(self, ip: str, src: str, dst: str) -> None:
        if src:
            try:
                self.d.cloud.migrate_ip(EniId(src), EniId(dst), ip)
                return
            except CloudError as exc:
                if exc.retryable:
                    raise
                log.info(
                    "migrate %s %s -> %s failed (%s); unassign + assign", ip, src, dst, exc.code
                )
                self.d.cloud.unassign_ips(EniId(src), [ip], gone_ok=True)
        self.d.cloud.assign_ips(EniId(dst), addresses=[ip], client_token=str(uuid.uuid4()))
