"""NodeENIConfig (nec): one per node, named after it, owned by the Node.
``targets(node, limit)`` creates the node's nec when it is missing, reads its
warm-target annotations (pure rules in ``ipamd.rules.warm``) and returns the
targets in force: on a bad value a Warning event on the nec names the
problem and the targets the node had before stay. The effective targets and
their source are written to the nec's status (``kubectl get nec``)."""

from __future__ import annotations

import logging

from core import names
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.kube.api import JSON, KubeError
from ipamd.rules import warm
from ipamd.rules.pool import PoolTargets
from ipamd.rules.records import NodeRec

log = logging.getLogger(__name__)

NECS = f"/apis/{names.CRD_GROUP}/{names.CRD_VERSION}/{warm.PLURAL_NEC}"


def nec_path(name: str) -> str:
    return f"{NECS}/{name}"


def nec_ref(name: str, uid: str = "") -> ev.ObjectRef:
    return ev.ObjectRef(warm.KIND_NEC, name, "", uid, names.CRD_API_VERSION)


class NecController:
    def __init__(self, deps: Deps) -> None:
        self.d = deps

    def _defaults(self) -> PoolTargets:
        s = self.d.settings
        return PoolTargets(s.min_prebind, s.max_prebind)

    def targets(self, node: NodeRec, limit: int) -> PoolTargets:
        """The warm targets of ``node`` (``limit``: the most IPs it holds for pods)."""
        st = self.d.state
        necs = st.necs
        rec = necs.get(node.name) if necs is not None else None
        if necs is not None and rec is None:
            rec = self._create(node)
        ann = dict(rec.annotations) if rec is not None else {}
        got = warm.resolve(ann, self._defaults(), limit)
        if got.value is None:
            kept = (
                st.warm.get(node.name)
                or warm.from_status(rec.status if rec else None)
                or warm.WarmTargets(self._defaults(), warm.SOURCE_GLOBAL)
            )
            st.warm[node.name] = kept
            msg = (
                f"invalid warm target on NodeENIConfig {node.name}: {got.problem}; keeping "
                f"min {kept.targets.min_prebind} max {kept.targets.max_prebind} ({kept.source})"
            )
            self.d.events.emit(
                nec_ref(node.name, rec.uid if rec else ""), ev.WARNING, "InvalidWarmTarget", msg
            )
            self._status(node.name, rec, kept, got.problem)
            return kept.targets
        prev = st.warm.get(node.name)
        st.warm[node.name] = got.value
        if prev is not None and prev != got.value:
            log.info(
                "node %s: warm targets now min %d max %d (%s)",
                node.name,
                got.value.targets.min_prebind,
                got.value.targets.max_prebind,
                got.value.source,
            )
        self._status(node.name, rec, got.value, "")
        return got.value.targets

    def _create(self, node: NodeRec) -> warm.NecRec | None:
        meta: JSON = {"name": node.name, "labels": {names.NODE_LABEL: node.name}}
        if node.uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
            ]
        body: JSON = {
            "apiVersion": names.CRD_API_VERSION,
            "kind": warm.KIND_NEC,
            "metadata": meta,
            "spec": {"nodeName": node.name},
        }
        try:
            try:
                obj = self.d.crds.api.create(NECS, body)
            except KubeError as exc:
                if not exc.conflict:
                    raise
                obj = self.d.crds.api.get(nec_path(node.name))
        except KubeError as exc:
            # the pool is not held up by its nec: global targets until a later pass creates it
            log.warning("node %s: cannot create NodeENIConfig %s: %s", node.name, node.name, exc)
            return None
        assert self.d.state.necs is not None
        self.d.state.necs.apply(obj)
        return warm.nec_from_obj(obj)

    def _status(
        self, name: str, rec: warm.NecRec | None, w: warm.WarmTargets, problem: str
    ) -> None:
        if rec is None:
            return
        want = (w.targets.min_prebind, w.targets.max_prebind, w.source, problem)
        if rec.status == want:
            return
        body = {
            "status": {
                "node": name,
                "minWarmTarget": want[0],
                "maxWarmTarget": want[1],
                "source": want[2],
                "message": problem,
            }
        }
        try:
            obj = self.d.crds.api.patch(nec_path(name) + "/status", body)
        except KubeError as exc:
            # only the report is late: the targets are in force; the next pass retries
            log.warning("node %s: cannot write the status of NodeENIConfig %s: %s", name, name, exc)
            return
        if self.d.state.necs is not None:
            self.d.state.necs.apply(obj)

    def forget(self, name: str) -> None:
        """The node is gone: delete its nec (its owner reference does it too
        where the garbage collector runs)."""
        st = self.d.state
        st.warm.pop(name, None)
        if st.necs is None or st.necs.get(name) is None:
            return
        try:
            self.d.crds.api.delete(nec_path(name))
        except KubeError as exc:
            if not exc.not_found:
                raise
        st.necs.apply(None, deleted_key=name)
