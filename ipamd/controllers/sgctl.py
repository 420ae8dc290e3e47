"""Security groups of the node's ENIs (``--enable-security-groups``).

Per node (work key ``sg:<node>``, queued for every node once per reconcile
period and when its nec's override changes): one DescribeNetworkInterfaces of
the node's instance gives the node's groups (its primary ENI's ``GroupSet``)
and the groups of each ENI of ours on it; the target (``ipamd.rules.secgroups``:
the node's groups or the nec's ``spec.securityGroupIds``) is planned into
(dis)associate calls per ENI and applied in order. A new ENI gets the target
at CreateNetworkInterface (``groups_for_new_eni``).

Crash- and error-safe by construction: nothing is remembered between steps;
each pass plans from the groups the cloud reports, no step leaves an ENI that
should hold groups with none, and a failed call fails the work item, which the
queue retries with backoff (the adapter has already retried what can succeed
later). Every change is logged, counted and reported by a Normal event on the
node; a failure by a Warning event; a bad override by a Warning event on the
nec with the previous target kept (as for bad warm targets). The target in
force is written to the nec's status."""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge

from cloud.errors import CloudError, NotFoundError
from cloud.models import Eni
from core import names
from core.ids import EniId, InstanceId
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.kube.api import KubeError
from ipamd.kube.informer import Informer
from ipamd.metrics import REGISTRY
from ipamd.rules import secgroups as sg

log = logging.getLogger(__name__)

SECURITY_GROUPS = "sg:"
NECS = f"/apis/{names.CRD_GROUP}/{names.CRD_VERSION}/nodeeniconfigs"

CHANGES = Counter(
    "tke_ipamd_security_group_changes_total",
    "security group (dis)associate calls on the node's ENIs, by action and result",
    ["action", "result"],
    registry=REGISTRY,
)
OUT_OF_SYNC = Gauge(
    "tke_ipamd_security_group_enis_out_of_sync",
    "ENIs of ours whose security groups differed from their node's target at their "
    "node's last check and could not be brought in line yet",
    registry=REGISTRY,
)
INVALID = Counter(
    "tke_ipamd_security_group_invalid_overrides_total",
    "NodeENIConfig spec.securityGroupIds found invalid (the previous target kept)",
    registry=REGISTRY,
)


class SecurityGroupController:
    def __init__(self, deps: Deps, necs: Informer[sg.SgNecRec] | None) -> None:
        self.d = deps
        self.necs = necs
        self.targets: dict[str, sg.Target] = {}  # node -> target in force
        self._behind: dict[str, int] = {}  # node -> ENIs out of sync
        self._lock = threading.Lock()

    # --- informer handler -------------------------------------------------------
    def on_nec(self, key: str, old: sg.SgNecRec | None, new: sg.SgNecRec | None) -> None:
        if new is not None and (old is None or old.override != new.override):
            self.d.state.queue.add(SECURITY_GROUPS + key)

    def queue_all(self) -> None:
        for name in self._nodes():
            self.d.state.queue.add(SECURITY_GROUPS + name)

    def _nodes(self) -> list[str]:
        nodes = self.d.state.nodes
        if nodes is None:
            return []
        return sorted(n.name for n in nodes.values() if n.instance_id and not n.deleting)

    # --- the target -------------------------------------------------------------
    def target(self, name: str, node_groups: tuple[str, ...]) -> sg.Target:
        """The node's target now (a bad override: Warning event, previous kept)."""
        rec = self.necs.get(name) if self.necs is not None else None
        with self._lock:
            previous = self.targets.get(name) or sg.from_status(rec.status if rec else None)
        target, problem = sg.resolve(node_groups, rec.override if rec else None, previous)
        if problem:
            INVALID.inc()
            self.d.events.emit(
                ev.ObjectRef(sg.KIND_NEC, name, "", rec.uid if rec else "", names.CRD_API_VERSION),
                ev.WARNING,
                "InvalidSecurityGroups",
                f"invalid security groups on NodeENIConfig {name}: {problem}; keeping "
                f"{list(target.groups)} ({target.source})",
            )
        with self._lock:
            self.targets[name] = target
        self._status(name, rec, target, problem)
        return target

    def groups_for_new_eni(self, name: str, instance_id: str) -> tuple[str, ...]:
        """The groups an ENI created now for node ``name`` gets (read fresh)."""
        enis = self.d.cloud.describe_enis(instance_id=InstanceId(instance_id))
        primary = next((e for e in enis if e.primary), None)
        if primary is None:
            raise CloudError(
                "DescribeNetworkInterfaces",
                "ResourceNotFound",
                f"instance {instance_id} of node {name} shows no primary ENI: its security "
                "groups are unknown, no ENI is created without them",
            )
        return self.target(name, primary.security_groups).groups

    # --- one node -----------------------------------------------------------------
    def sync(self, name: str) -> None:
        node = self.d.state.node(name)
        if node is None or node.deleting or not node.instance_id:
            with self._lock:
                self.targets.pop(name, None)
                self._behind.pop(name, None)
            self._gauge()
            return
        enis = self.d.cloud.describe_enis(instance_id=InstanceId(node.instance_id))
        primary = next((e for e in enis if e.primary), None)
        if primary is None:
            log.warning("node %s: instance %s shows no primary ENI", name, node.instance_id)
            return
        target = self.target(name, primary.security_groups)
        ours = [e for e in enis if not e.primary and self._ours(e)]
        behind = sum(1 for e in ours if e.security_groups != target.groups)
        self._set_behind(name, behind)
        for eni in ours:
            if eni.security_groups != target.groups:
                self._converge(name, eni, target)
                behind -= 1
                self._set_behind(name, behind)

    def _ours(self, e: Eni) -> bool:
        return e.tags.get(names.TAG_CLUSTER_ID) == self.d.settings.cluster_id

    def _converge(self, name: str, eni: Eni, target: sg.Target) -> None:
        steps = sg.plan(eni.security_groups, target.groups)
        for step in steps:
            call = (
                self.d.cloud.associate_security_groups
                if step.action == sg.ASSOCIATE
                else self.d.cloud.disassociate_security_groups
            )
            try:
                call([EniId(eni.eni_id)], list(step.groups))
            except NotFoundError:
                CHANGES.labels(step.action, "gone").inc()
                log.info("node %s: ENI %s went while its groups changed", name, eni.eni_id)
                return
            except CloudError as exc:
                CHANGES.labels(step.action, "error").inc()
                self.d.events.emit(
                    ev.node_ref(name),
                    ev.WARNING,
                    "SecurityGroupsFailed",
                    f"could not {step.action} {list(step.groups)} on ENI {eni.eni_id} "
                    f"(towards {list(target.groups)}): {exc}; retrying",
                )
                raise
            CHANGES.labels(step.action, "ok").inc()
        log.info(
            "node %s: ENI %s security groups %s -> %s (%s, %d calls)",
            name,
            eni.eni_id,
            list(eni.security_groups),
            list(target.groups),
            target.source,
            len(steps),
        )
        self.d.events.emit(
            ev.node_ref(name),
            ev.NORMAL,
            "SecurityGroupsUpdated",
            f"ENI {eni.eni_id}: security groups {list(eni.security_groups)} -> "
            f"{list(target.groups)} ({target.source})",
        )

    def _set_behind(self, name: str, n: int) -> None:
        with self._lock:
            self._behind[name] = n
        self._gauge()

    def _gauge(self) -> None:
        with self._lock:
            OUT_OF_SYNC.set(sum(self._behind.values()))

    def _status(
        self, name: str, rec: sg.SgNecRec | None, target: sg.Target, problem: str
    ) -> None:
        if rec is None:
            return  # the nec is created by the node's sync; the next pass reports
        want = (target.groups, target.source, problem)
        if rec.status == want:
            return
        body = {
            "status": {
                "securityGroupIds": list(target.groups),
                "securityGroupSource": target.source,
                "securityGroupMessage": problem,
            }
        }
        try:
            obj = self.d.crds.api.patch(f"{NECS}/{name}/status", body)
        except KubeError as exc:
            log.warning("node %s: cannot write the security groups of nec %s: %s", name, name, exc)
            return
        if self.necs is not None:
            self.necs.apply(obj)
