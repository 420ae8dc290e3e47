"""The reconcile loop: compares the cloud (our ENIs, found by the cluster tag)
with the CRDs and fixes drift, logging and counting every fix:

* an ENI of ours with no VpcENI: adopted when its instance is a live node;
  otherwise deleted only when certainly ours and certainly leaked
  (``ipamd.controllers.leaks``: creator tag, our VPC, detached or on a gone instance,
  ``--leaked-eni-min-age``, ``--leaked-eni-dry-run``);
* a VpcENI whose ENI is gone: its dynamic VpcIPs and the record are dropped;
* a secondary IP on our ENI with no VpcIP: adopted as a warm dynamic IP;
* a dynamic VpcIP the cloud no longer has on that ENI: dropped; a claimed one
  is handed to its claim (which locates the address again).

Every discrepancy is re-checked with a fresh describe of that one ENI under
the node's lock before it is fixed, so work in flight is never mistaken for
drift."""

from __future__ import annotations

import logging
from collections import defaultdict

from cloud.errors import CloudError
from cloud.models import Eni
from core import cidr, names
from core import models as m
from core.ids import EniId, InstanceId
from core.models import ENI_PHASE_DETACHED
from ipamd import metrics
from ipamd.controllers.enis import claim_naming, ip_spec, record_claimed
from ipamd.controllers.leaks import LeakSweeper
from ipamd.controllers.nodes import NodeController
from ipamd.deps import Deps
from ipamd.rules.records import EniRec, IpRec
from ipamd.state import CLAIM

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(self, deps: Deps, nodes: NodeController) -> None:
        self.d = deps
        self.nodes = nodes
        self.fixes = 0
        self.leaks = LeakSweeper(deps, nodes.enis.detach)

    def _fix(self, kind: str, message: str, *args: object) -> None:
        self.fixes += 1
        metrics.RECONCILE_FIXES.labels(kind).inc()
        log.warning("reconcile [%s]: " + message, kind, *args)

    def run_once(self) -> int:
        """One pass; returns the number of fixes."""
        before = self.fixes
        st = self.d.state
        assert st.enis is not None and st.ips is not None
        self.leaks.begin_pass()
        cloud_enis = {
            e.eni_id: e
            for e in self.d.cloud.describe_enis(
                tags={names.TAG_CLUSTER_ID: self.d.settings.cluster_id}
            )
            if not e.primary
        }
        node_by_instance = {}
        if st.nodes is not None:
            node_by_instance = {
                n.instance_id: n.name for n in st.nodes.values() if n.instance_id and not n.deleting
            }
        # group work by node so each node is fixed under its lock
        work: dict[str, set[str]] = defaultdict(set)
        for eni_id, eni in cloud_enis.items():
            rec = st.enis.get(eni_id)
            owner = (
                rec.node
                if rec
                else node_by_instance.get(
                    eni.instance_id or eni.tags.get(names.TAG_INSTANCE_ID, ""), ""
                )
            )
            work[owner].add(eni_id)
        for erec in st.enis.values():
            work[erec.node].add(erec.eni_id)
        for node, eni_ids in work.items():
            with st.node_lock(node):
                for eid in sorted(eni_ids):
                    try:
                        self._check_eni(node, eid, cloud_enis.get(EniId(eid)), node_by_instance)
                    except CloudError as exc:
                        log.warning("reconcile: ENI %s: %s", eid, exc)
        self.leaks.end_pass()
        # VpcIPs pointing at ENIs we have no record of at all
        known = set(cloud_enis) | {k for k, _ in st.enis.items()}
        for ip in st.ips.values():
            if ip.eni and ip.eni not in known:
                with st.node_lock(ip.node):
                    self._orphan_ip(ip.ip)
        return self.fixes - before

    def _check_eni(
        self, node: str, eni_id: str, snapshot: Eni | None, node_by_instance: dict[str, str]
    ) -> None:
        st = self.d.state
        assert st.enis is not None
        rec = st.enis.get(eni_id)
        if (
            rec is not None
            and snapshot is not None
            and self._attachment_ok(rec, snapshot)
            and self._agrees(rec.node, eni_id, snapshot)
        ):
            return  # the common case: no second look needed
        fresh = self.d.cloud.describe_enis(eni_ids=[EniId(eni_id)])
        eni = fresh[0] if fresh else None
        if eni is None:
            if rec is not None:
                for ip in st.node_ips(rec.node):
                    if ip.eni == eni_id:
                        self._orphan_ip(ip.ip)
                self.d.crds.delete_eni(eni_id)
                self._fix(
                    "eni-record-without-eni", "VpcENI %s: the ENI is gone; record dropped", eni_id
                )
            return
        if eni.tags.get(names.TAG_CLUSTER_ID) != self.d.settings.cluster_id:
            return
        if rec is None:
            owner = node_by_instance.get(
                eni.instance_id or eni.tags.get(names.TAG_INSTANCE_ID, ""), ""
            )
            if owner and (eni.instance_id or eni.state == "AVAILABLE"):
                self._adopt_eni(owner, eni)
            else:
                claimed = [a for a in eni.secondary_ips if (r := st.ip(a)) is not None and r.claim]
                if claimed:
                    return  # parked claimed IPs: their claims decide
                if self.leaks.consider(eni):
                    self._fix(
                        "leaked-eni",
                        "ENI %s (%d IPs) had no record and no live node: deleted",
                        eni.eni_id,
                        len(eni.secondary_ips),
                    )
            return
        if not self._attachment_ok(rec, eni):
            self._fix_attachment(rec, eni)
        self._check_ips(rec.node, eni)

    def _attachment_ok(self, rec: EniRec, eni: Eni) -> bool:
        """The record's phase says what the cloud shows: Attached to its instance,
        or Detached (an ENI of a removed node parked for claimed IPs)."""
        if rec.phase == ENI_PHASE_DETACHED:
            return not eni.instance_id
        return rec.phase == m.ENI_PHASE_ATTACHED and eni.instance_id == rec.instance_id

    def _fix_attachment(self, rec: EniRec, eni: Eni) -> None:
        """A crash between the VpcENI write and the attach (or its status) leaves
        it Attaching: finish the attach for a live node and record the result.
        A Detaching record is the node controller's delete in progress: an ENI
        the cloud shows empty is left to it (re-attaching it would undo the
        detach the delete needs: the seed-23 livelock); one that holds
        addresses is not to be deleted, so it is made usable again."""
        st = self.d.state
        if not st.node_alive(rec.node) or rec.phase == ENI_PHASE_DETACHED:
            return  # the node controller tears it down
        if rec.phase == m.ENI_PHASE_DETACHING and not eni.secondary_ips:
            return  # the node controller finishes the delete (retried with backoff)
        if not eni.instance_id and rec.instance_id:
            self.d.cloud.attach_eni(EniId(eni.eni_id), InstanceId(rec.instance_id))
            fresh = self.d.cloud.describe_enis(eni_ids=[EniId(eni.eni_id)])
            eni = fresh[0] if fresh else eni
        if eni.instance_id != rec.instance_id:
            log.error(
                "reconcile: ENI %s is attached to %s, its record says %s",
                eni.eni_id,
                eni.instance_id,
                rec.instance_id,
            )
            return
        sub = st.subnet(eni.subnet_id)
        self.d.crds.eni_status(
            eni.eni_id,
            m.VpcEniStatus(
                phase=m.ENI_PHASE_ATTACHED,
                mac=eni.mac.lower(),
                primary_ip=eni.primary_ip or "",
                subnet_cidr=sub.cidr if sub else "",
                gateway=str(cidr.gateway(sub.cidr)) if sub else "",
                device_index=eni.device_index,
                ip_capacity=rec.capacity or None,
            ),
        )
        self._fix(
            "eni-attach-finished",
            "ENI %s of node %s was %s: now Attached (device %s)",
            eni.eni_id,
            rec.node,
            rec.phase or "unrecorded",
            eni.device_index,
        )

    def _agrees(self, node: str, eni_id: str, snapshot: Eni) -> bool:
        recorded = {ip.ip for ip in self.d.state.node_ips(node) if ip.eni == eni_id}
        if recorded != set(snapshot.secondary_ips):
            return False
        return all(
            (r := self.d.state.ip(a)) is not None and r.eni == eni_id
            for a in snapshot.secondary_ips
        )

    def _adopt_eni(self, node: str, eni: Eni) -> None:
        st = self.d.state
        facts = st.facts.get(node)
        sub = st.subnet(eni.subnet_id)
        if not eni.instance_id and facts is not None:
            self.d.cloud.attach_eni(EniId(eni.eni_id), facts.instance_id)  # type: ignore[arg-type]
            fresh = self.d.cloud.describe_enis(eni_ids=[EniId(eni.eni_id)])
            eni = fresh[0] if fresh else eni
        spec = m.VpcEniSpec(
            node_name=node,
            instance_id=eni.instance_id or "",
            subnet_id=eni.subnet_id,
            vpc_id=eni.vpc_id,
            zone=eni.zone,
        )
        status = m.VpcEniStatus(
            phase=m.ENI_PHASE_ATTACHED if eni.instance_id else ENI_PHASE_DETACHED,
            mac=eni.mac.lower(),
            primary_ip=eni.primary_ip or "",
            subnet_cidr=sub.cidr if sub else "",
            gateway=str(cidr.gateway(sub.cidr)) if sub else "",
            device_index=eni.device_index,
            ip_capacity=facts.limits.ips_per_eni if facts else None,
        )
        self.d.crds.create_eni(spec, status, eni.eni_id)
        self._fix("adopted-eni", "ENI %s of node %s had no record: adopted", eni.eni_id, node)
        self._check_ips(node, eni)

    def _check_ips(self, node: str, eni: Eni) -> None:
        st = self.d.state
        in_cloud = set(eni.secondary_ips)
        for a in sorted(in_cloud):
            rec = st.ip(a)
            if rec is None and (claim := claim_naming(st, a)) is not None:
                record_claimed(self.d, node, eni, a, claim)
                self._fix(
                    "adopted-claimed-ip",
                    "IP %s on %s (node %s) had no record; claim %s names it: adopted as its",
                    a,
                    eni.eni_id,
                    node,
                    claim.key,
                )
            elif rec is None:
                self.d.crds.create_ip(a, ip_spec(node, eni.eni_id, eni.subnet_id, eni.zone))
                self._fix(
                    "adopted-ip",
                    "IP %s on %s (node %s) had no record: adopted as warm",
                    a,
                    eni.eni_id,
                    node,
                )
            elif rec.eni != eni.eni_id:
                if rec.claim:
                    st.queue.add(CLAIM + rec.claim)
                else:
                    self.d.crds.create_ip(a, ip_spec(node, eni.eni_id, eni.subnet_id, eni.zone))
                    self._fix(
                        "ip-moved",
                        "IP %s is on %s, record said %s: corrected",
                        a,
                        eni.eni_id,
                        rec.eni,
                    )
        for ip in st.node_ips(node):
            if ip.eni == eni.eni_id and ip.ip not in in_cloud:
                self._orphan_ip(ip.ip)

    def _node_of(self, eni: Eni) -> str:
        """The node an ENI of ours belongs to: its VpcENI's, else the live node
        whose instance it is attached to (or tagged with); "" when none."""
        st = self.d.state
        erec = st.enis.get(eni.eni_id) if st.enis else None
        if erec is not None:
            return erec.node
        iid = eni.instance_id or eni.tags.get(names.TAG_INSTANCE_ID, "")
        if iid and st.nodes is not None:
            for n in st.nodes.values():
                if n.instance_id == iid and not n.deleting:
                    return n.name
        return ""

    def _relocate_claimed(self, rec: IpRec) -> None:
        """A claimed IP is not where its record says: find it, or take it back."""
        st = self.d.state
        vpc = st.decision.vpc_id if st.decision else None
        found = self.d.cloud.describe_enis(address=rec.ip, vpc_id=vpc)
        ours = [e for e in found if e.tags.get(names.TAG_CLUSTER_ID) == self.d.settings.cluster_id]
        if ours:
            eni = ours[0]
            node = self._node_of(eni)
            if not node:
                # never name a node whose instance does not hold the ENI: the ENI's
                # own pass adopts it (or its claim moves the address) first
                log.warning(
                    "reconcile: claimed IP %s of %s is on %s, which belongs to no known node; "
                    "record left as it is (%s)",
                    rec.ip,
                    rec.claim,
                    eni.eni_id,
                    rec.eni,
                )
                return
            self.d.crds.create_ip(
                rec.ip,
                ip_spec(
                    node,
                    eni.eni_id,
                    eni.subnet_id,
                    eni.zone,
                    claim=rec.claim,
                    reserved_uid=rec.reserved_uid,
                ),
            )
            self._fix(
                "claimed-ip-moved",
                "claimed IP %s is on %s, record said %s: corrected",
                rec.ip,
                eni.eni_id,
                rec.eni,
            )
            return
        if found:
            metrics.CLAIM_CONFLICTS.labels("foreign-eni").inc()
            log.error(
                "reconcile: claimed IP %s of %s is held by a foreign ENI %s",
                rec.ip,
                rec.claim,
                found[0].eni_id,
            )
            return
        if st.enis is not None and st.enis.get(rec.eni) is not None:
            self.d.cloud.assign_ips(EniId(rec.eni), addresses=[rec.ip])
            self._fix(
                "claimed-ip-retaken",
                "claimed IP %s of %s was not assigned: re-assigned to %s",
                rec.ip,
                rec.claim,
                rec.eni,
            )

    def _orphan_ip(self, address: str) -> None:
        rec = self.d.state.ip(address)
        if rec is None:
            return
        if rec.claim:
            self._relocate_claimed(rec)
            self.d.state.queue.add(CLAIM + rec.claim)
            return
        self.d.crds.delete_ip(address)
        self._fix(
            "ip-record-without-ip",
            "VpcIP %s: not on %s in the cloud; record dropped",
            address,
            rec.eni,
        )
