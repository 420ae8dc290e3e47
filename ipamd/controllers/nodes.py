"""The node controller: one ``sync(node)`` brings a node's ENIs and warm pool
to target (pure decisions in ``ipamd.rules.pool``), carries out the release
handshake for dynamic IPs, drains removed subnets, deletes empty ENIs, and
tears a removed node down (dynamic IPs and ENIs released; claimed IPs stay,
on a detached ENI, until their claim moves or expires)."""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from cloud.errors import CloudError, NotFoundError
from core import models as m
from core import names
from core.ids import EniId, InstanceId
from core.limits import limits_for_type
from core.models import ENI_PHASE_DETACHED, parse_rfc3339
from ipamd import metrics
from ipamd.controllers.enis import SUBNET_EXHAUSTED_CODES, EniOps, ip_spec
from ipamd.controllers.necctl import NecController
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.rules import awaiting, pool, warm
from ipamd.rules.records import EniRec, IpRec, NodeRec
from ipamd.state import NodeFacts

log = logging.getLogger(__name__)


def free_phase(ip: IpRec) -> bool:
    return ip.phase in ("", m.IP_PHASE_FREE)


class NodeController:
    def __init__(self, deps: Deps) -> None:
        self.d = deps
        self.enis = EniOps(deps)
        self.necs = NecController(deps)

    # --- entry point ---
    def held_by_unclaimed(self, name: str) -> set[str]:
        """Addresses of node ``name`` whose unclaimed mark (core.models) names a
        pod that still exists (not finished): that pod's own address, also while
        it has no sandbox and its agent reports the address free. Such an
        address is never asked back, trimmed or drained, and counts as in use
        for the warm pool; once the pod is gone the mark means nothing."""
        st = self.d.state
        marked = [ip for ip in st.node_ips(name) if ip.unclaimed_uid]
        if not marked:
            return set()
        if st.pods is None:
            return {ip.ip for ip in marked}  # pods unknown: every mark holds
        live = {p.uid for p in st.pods.values() if not p.terminal}
        return {ip.ip for ip in marked if ip.unclaimed_uid in live}

    def sync(self, name: str) -> None:
        st = self.d.state
        with st.node_lock(name):
            node = st.node(name)
            if node is None or node.deleting:
                self.teardown(name)
                return
            facts = self.facts(node)
            if facts is None:
                return
            self.finish_releases(name, node_gone=False)
            if st.decision is None:
                # the subnet decision is unknown (not read back, not checked with the
                # cloud yet): nothing can be judged draining or surplus, so nothing is
                # asked back, trimmed or deleted, and no NoSubnetInZone is claimed
                return
            zone_subnets = st.decision.usable_in_zone(facts.zone)
            if not zone_subnets:
                self._no_subnet(node, facts)
            else:
                self.d.objects.node_condition(
                    name, True, "ENIReady", f"subnets for zone {facts.zone} are configured"
                )
            self.drain(name)
            if zone_subnets:
                self.fill_or_trim(node, facts)
                self.attach_ahead(name, facts)
            self.delete_empty_enis(name, facts)

    def _no_subnet(self, node: NodeRec, facts: NodeFacts) -> None:
        msg = (
            f"no subnet configured for zone {facts.zone} in ConfigMap "
            f"{names.CONFIGMAP_NAMESPACE}/{names.CONFIGMAP_NAME} ({names.CM_SUBNET_ID}); "
            "this node gets no ENIs"
        )
        self.d.events.emit(ev.node_ref(node.name), ev.WARNING, "NoSubnetInZone", msg)
        self.d.objects.node_condition(node.name, False, "NoSubnetInZone", msg)

    # --- instance facts ---
    def facts(self, node: NodeRec) -> NodeFacts | None:
        st = self.d.state
        cached = st.facts.get(node.name)
        if cached is not None and cached.instance_id == node.instance_id:
            return cached
        if not node.instance_id:
            msg = (
                "cannot find the node's cloud instance: set spec.providerID "
                "(qcloud:///<zone>/ins-xxxxxxxx) or label tke.cloud.tencent.com/instance-id"
            )
            self.d.events.emit(ev.node_ref(node.name), ev.WARNING, "NoInstanceId", msg)
            self.d.objects.node_condition(node.name, False, "NoInstanceId", msg)
            return None
        iid = InstanceId(node.instance_id)
        missed = st.facts_miss.get(node.name)
        if missed is not None and missed[0] == iid and time.monotonic() - missed[1] < 60:
            return None  # looked up less than a minute ago and not found: no call storm
        try:
            found = self.d.cloud.describe_instances([iid])
        except NotFoundError:
            found = []  # InvalidInstanceId.NotFound and friends
        if not found:
            st.facts_miss[node.name] = (iid, time.monotonic())
            msg = f"instance {iid} of node {node.name} does not exist in the cloud"
            self.d.events.emit(ev.node_ref(node.name), ev.WARNING, "InstanceNotFound", msg)
            self.d.objects.node_condition(node.name, False, "InstanceNotFound", msg)
            return None
        inst = found[0]
        try:
            limits = self.d.cloud.eni_limits(iid)
        except CloudError as exc:
            log.info(
                "node %s: DescribeNetworkInterfaceLimit failed (%s); using the table",
                node.name,
                exc.code,
            )
            limits = limits_for_type(inst.instance_type)
        facts = NodeFacts(iid, inst.zone, inst.instance_type, limits)
        st.facts[node.name] = facts
        st.facts_miss.pop(node.name, None)
        log.info(
            "node %s: instance %s type %s zone %s limits %d ENIs x %d IPs (%s)",
            node.name,
            iid,
            inst.instance_type,
            inst.zone,
            limits.enis,
            limits.ips_per_eni,
            limits.source,
        )
        return facts

    # --- release handshake for dynamic IPs ---
    def finish_releases(self, name: str, *, node_gone: bool) -> None:
        """Unassign dynamic IPs whose release request the agent answered (all
        dynamic IPs when the node is gone) and delete their VpcIPs. Only the
        answer to the open request counts (``IpRec.release_granted``): a stale
        "Released", or an agent that does not echo the request id, never does."""
        by_eni: dict[str, list[str]] = defaultdict(list)
        held = set() if node_gone else self.held_by_unclaimed(name)
        for ip in self.d.state.node_ips(name):
            if ip.claim:
                continue
            if ip.ip in held:
                if ip.state == m.IP_STATE_RELEASING:
                    # asked back before its pod's mark was honoured (an older
                    # ipamd): the request is taken back, its id too
                    self.d.crds.patch_ip_spec(
                        ip.ip, {"state": m.IP_STATE_ASSIGNED, "releaseId": None}
                    )
                    log.info(
                        "node %s: release of %s taken back: pod uid %s (unclaimed) holds it",
                        name,
                        ip.ip,
                        ip.unclaimed_uid,
                    )
                continue
            if node_gone or ip.release_granted:
                by_eni[ip.eni].append(ip.ip)
            elif ip.state == m.IP_STATE_RELEASING and not ip.release_id:
                # asked back by an ipamd that gave requests no id: ask again
                # with one, or no answer could ever count
                self.request_release(ip, "request re-opened with an id")
        for eni_id, addrs in by_eni.items():
            self.enis.unassign(eni_id, addrs)
            for a in addrs:
                self.d.crds.delete_ip(a)
            log.info("node %s: released %d IPs of %s: %s", name, len(addrs), eni_id, addrs)

    def request_release(self, ip: IpRec, why: str) -> None:
        """Open a release request with a fresh id (core.models: the agent echoes
        it when it grants); a request already open keeps its id."""
        if ip.state == m.IP_STATE_RELEASING and ip.release_id:
            return
        rid = uuid.uuid4().hex
        self.d.crds.patch_ip_spec(ip.ip, {"state": m.IP_STATE_RELEASING, "releaseId": rid})
        log.info("node %s: asked the agent to release %s (%s, id %s)", ip.node, ip.ip, why, rid)

    def drain(self, name: str) -> None:
        """Ask back free dynamic IPs whose subnet is no longer active."""
        st = self.d.state
        if st.decision is None:
            return  # unknown is not "no longer active"
        held = self.held_by_unclaimed(name)
        for ip in st.node_ips(name):
            if ip.claim or ip.state != m.IP_STATE_ASSIGNED or st.subnet_active(ip.subnet):
                continue
            if ip.ip in held:
                continue  # its pod's own (unclaimed mark); drained once the pod is gone
            if ip.subnet in st.exhausted and st.decision and ip.subnet in st.decision.active:
                continue  # exhausted but configured: keep what we have
            if not ip.used:
                self.request_release(ip, f"subnet {ip.subnet} is draining")

    # --- warm pool ---
    def eni_views(self, name: str, facts: NodeFacts) -> list[pool.EniView]:
        st = self.d.state
        ips = st.node_ips(name)
        held = self.held_by_unclaimed(name)
        secondaries: dict[str, int] = defaultdict(int)
        in_use: dict[str, int] = defaultdict(int)
        for ip in ips:
            secondaries[ip.eni] += 1
            if ip.used or ip.claim or ip.ip in held:
                in_use[ip.eni] += 1
        views = []
        for e in st.node_enis(name):
            usable = (
                e.phase == m.ENI_PHASE_ATTACHED
                and st.subnet_active(e.subnet)
                and e.zone == facts.zone
            )
            views.append(
                pool.EniView(
                    e.eni_id,
                    e.subnet,
                    e.capacity or facts.limits.ips_per_eni,
                    secondaries.get(e.eni_id, 0),
                    in_use.get(e.eni_id, 0),
                    usable,
                    e.phase in (m.ENI_PHASE_CREATING, m.ENI_PHASE_ATTACHING),
                )
            )
        return views

    def eni_with_room(
        self, name: str, facts: NodeFacts, *, subnet: str | None = None
    ) -> EniRec | None:
        """For one more IP: the attached ENI with room and the most IPs in use
        (fewest ENIs), in ``subnet`` when given (a claimed IP's subnet, which may be
        draining) else in an active one; or a new ENI when the node can take one."""
        st = self.d.state
        attached = {e.eni_id for e in st.node_enis(name) if e.phase == m.ENI_PHASE_ATTACHED}
        views = self.eni_views(name, facts)
        fits = [
            v
            for v in views
            if v.room > 0
            and v.eni_id in attached
            and (v.subnet_id == subnet if subnet else v.usable)
        ]
        if fits:
            best = min(fits, key=lambda v: (-v.in_use, -v.secondaries, v.eni_id))
            return st.enis.get(best.eni_id) if st.enis else None
        can_add = (
            len(views) + 1 < facts.limits.enis
            if subnet
            else pool.needs_new_eni(views, 1, facts.limits.enis)
        )
        if not can_add:
            return None
        new = self.enis.create_eni(name, facts, want=0, subnet_id=subnet)
        if new is None:
            return None
        return st.enis.get(new.eni_id) if st.enis else None

    def fill_or_trim(self, node: NodeRec, facts: NodeFacts) -> None:
        st = self.d.state
        s = self.d.settings
        ips = st.node_ips(node.name)
        dynamic = [ip for ip in ips if ip.dynamic and ip.state == m.IP_STATE_ASSIGNED]
        held = self.held_by_unclaimed(node.name)
        used = sum(1 for ip in dynamic if ip.used or ip.ip in held)
        claimed = sum(1 for ip in ips if ip.claim)
        max_dynamic = max(0, facts.limits.max_pods - claimed)
        owed = awaiting.owed(st.awaiting_pods(node.name), awaiting.held_by_pod(ips))
        if owed:
            st.awaiting[node.name] = owed
        else:
            st.awaiting.pop(node.name, None)
        delta = pool.warm_delta(
            pool.PoolCounts(len(dynamic), used, awaiting=owed),
            self.necs.targets(node, facts.limits.max_pods),
            max_dynamic,
        )
        if delta >= 0:
            st.surplus_since.pop(node.name, None)
        else:
            st.surplus_since.setdefault(node.name, time.monotonic())
        if delta > 0:
            self.add_ips(node.name, facts, delta, owed=owed)
        elif delta < 0:
            count = warm.trim_count(-delta, s.enable_quick_release)
            self.trim(node.name, facts, [ip for ip in dynamic if ip.ip not in held], count)

    def add_ips(self, name: str, facts: NodeFacts, want: int, *, owed: int = 0) -> int:
        """Add up to ``want`` dynamic IPs (``owed``: of the pool's demand, the
        IPs owed to pods waiting on the node; for the log)."""
        start = time.monotonic()
        added = 0
        views = self.eni_views(name, facts)
        for eni_id, n in pool.plan_adds(views, want):
            eni = self.d.state.enis.get(eni_id) if self.d.state.enis else None
            if eni is None:
                continue
            got = self._assign(name, eni, n)
            added += got
            if got < n:
                break
        left = want - added
        if left > 0:
            views = self.eni_views(name, facts)
            if pool.needs_new_eni(views, left, facts.limits.enis):
                new = self.enis.create_eni(name, facts, want=left)
                if new is not None:
                    added += len(new.secondary_ips)
            elif (
                sum(v.room for v in views if v.usable) < left
                and len(views) + 1 >= facts.limits.enis
            ):
                self.d.events.emit(
                    ev.node_ref(name),
                    ev.WARNING,
                    "ENILimit",
                    f"instance {facts.instance_id} ({facts.instance_type}) holds its maximum of "
                    f"{facts.limits.enis} ENIs x {facts.limits.ips_per_eni} IPs; "
                    "no more warm IPs can be added",
                )
        if added:
            metrics.ALLOCATION.labels("warm").observe(time.monotonic() - start)
            log.info(
                "node %s: added %d warm IPs (wanted %d; pods waiting here are owed %d)",
                name,
                added,
                want,
                owed,
            )
        return added

    def can_grow(self, facts: NodeFacts) -> bool:
        """An active subnet of the node's zone has free IPs (not marked exhausted)."""
        st = self.d.state
        if st.decision is None:
            return False
        return any(
            s.subnet_id not in st.exhausted and s.available_ips > 0
            for s in st.decision.usable_in_zone(facts.zone)
        )

    def attach_ahead(self, name: str, facts: NodeFacts) -> None:
        """Attach the next ENI ahead, with no secondary IP, when the node's
        ENIs are full and none of its IPs is idle (``pool.needs_ahead_eni``),
        whatever the warm targets: the device plugin counts the room of
        attached ENIs only, so without it no pod could come to the node and ask
        for the IP that makes it grow. Its first pod's wait gets an IP there
        (``ipamd.rules.awaiting``). Same create path as any ENI (intent record
        before the attach, reconciled after a crash)."""
        st = self.d.state
        held = self.held_by_unclaimed(name)
        idle = sum(
            1
            for ip in st.node_ips(name)
            if ip.dynamic and ip.phase != m.IP_PHASE_IN_USE and ip.ip not in held
        )
        views = self.eni_views(name, facts)
        if not pool.needs_ahead_eni(views, idle, facts.limits.enis, self.can_grow(facts)):
            return
        new = self.enis.create_eni(name, facts, want=0)
        if new is None:
            return
        metrics.ENIS_AHEAD.inc()
        st.ahead[name] = pool.Ahead(new.eni_id)
        log.info(
            "node %s: attached ENI %s ahead (no secondary IP): its %d ENIs had no room "
            "and no idle IP; the instance takes %d",
            name,
            new.eni_id,
            len(views),
            facts.limits.enis,
        )

    def _assign(self, name: str, eni: EniRec, n: int) -> int:
        try:
            addrs = self.d.cloud.assign_ips(
                EniId(eni.eni_id), count=n, client_token=str(uuid.uuid4())
            )
        except CloudError as exc:
            if exc.code in SUBNET_EXHAUSTED_CODES:
                self.enis.exhausted(name, eni.subnet, exc)
                return 0
            if exc.code in (
                "LimitExceeded.EniPrivateIpLimit",
                "InvalidParameterValue.LimitExceeded",
            ):
                log.warning("node %s: ENI %s is full per the cloud: %s", name, eni.eni_id, exc)
                return 0
            raise
        for a in addrs:
            self.d.crds.create_ip(a, ip_spec(name, eni.eni_id, eni.subnet, eni.zone))
        return len(addrs)

    def trim(self, name: str, facts: NodeFacts, dynamic: list[IpRec], count: int) -> None:
        """Ask back up to ``count`` idle dynamic IPs (free, not cooling down,
        not marked for a pod: ``dynamic`` excludes those) once the trim interval
        allows (``pool.may_trim``)."""
        st = self.d.state
        if st.decision is None:
            return
        now = time.monotonic()
        interval = self.d.settings.trim_interval.total_seconds()
        if not pool.may_trim(
            now, st.surplus_since.get(name), st.last_trim.get(name, -1e18), interval
        ):
            return
        cooldown = self.d.settings.ip_cooldown
        wall = datetime.now(UTC)
        free = []
        for ip in dynamic:
            if not free_phase(ip):
                continue
            updated = parse_rfc3339(ip.updated)
            if updated is not None and wall - updated < cooldown:
                continue  # freed too recently: conntrack entries may still point at it
            free.append(pool.FreeIp(ip.ip, ip.eni))
        released = 0
        while released < count:
            choice = pool.choose_release(free, self.eni_views(name, facts))
            if choice is None:
                break
            free.remove(choice)
            rec = st.ip(choice.address)
            if rec is None:
                continue
            self.request_release(rec, "surplus warm IP")
            released += 1
            st.last_trim[name] = now

    # --- ENIs ---
    def delete_empty_enis(self, name: str, facts: NodeFacts | None) -> None:
        st = self.d.state
        if st.decision is None:
            return  # no ENI delete while the subnet decision is unknown
        held: dict[str, int] = defaultdict(int)
        for ip in st.node_ips(name):
            held[ip.eni] += 1
        ahead = None
        if facts is not None:
            ahead = pool.keep_ahead(
                self.eni_views(name, facts),
                self.can_grow(facts),
                st.ahead.get(name),
                time.monotonic(),
                self.d.settings.trim_interval.total_seconds(),
            )
        if ahead is None:
            st.ahead.pop(name, None)
        else:
            st.ahead[name] = ahead
        for e in st.node_enis(name):
            if ahead is not None and e.eni_id == ahead.eni_id:
                continue  # the empty ENI kept ahead (pool.keep_ahead)
            if held.get(e.eni_id, 0) == 0:
                # no record on it: a candidate only; the cloud decides (delete_if_empty)
                self.enis.delete_if_empty(
                    e, e.instance_id if e.phase != ENI_PHASE_DETACHED else None
                )

    def teardown(self, name: str) -> None:
        st = self.d.state
        ips = st.node_ips(name)
        enis = st.node_enis(name)
        if not ips and not enis:
            st.facts.pop(name, None)
            st.facts_miss.pop(name, None)
            st.last_trim.pop(name, None)
            st.surplus_since.pop(name, None)
            st.awaiting.pop(name, None)
            st.ahead.pop(name, None)
            self.necs.forget(name)
            self.d.objects.forget_node(name)
            return
        self.finish_releases(name, node_gone=True)
        claimed: dict[str, int] = defaultdict(int)
        for ip in st.node_ips(name):
            claimed[ip.eni] += 1
        for e in enis:
            if claimed.get(e.eni_id, 0):
                if e.phase != ENI_PHASE_DETACHED:
                    self.enis.detach(e.eni_id, e.instance_id)
                    self.enis.set_phase(e, ENI_PHASE_DETACHED)
                    log.info(
                        "node %s gone: ENI %s detached, kept for %d claimed IPs",
                        name,
                        e.eni_id,
                        claimed[e.eni_id],
                    )
            else:
                # an ENI holding addresses no record showed is kept: they are
                # recorded now (their writes requeue the node), and the next pass
                # releases the dynamic ones and parks the claimed ones
                self.enis.delete_if_empty(
                    e, e.instance_id if e.phase != ENI_PHASE_DETACHED else None
                )
        st.facts.pop(name, None)
        st.facts_miss.pop(name, None)
        st.last_trim.pop(name, None)
        st.surplus_since.pop(name, None)
        st.awaiting.pop(name, None)
        st.ahead.pop(name, None)
        self.necs.forget(name)
        self.d.objects.forget_node(name)
