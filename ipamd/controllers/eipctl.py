"""Pod EIPs (``--enable-pod-eip``): a pod annotated with
``tke.cloud.tencent.com/eip-attributes`` gets an elastic IP, associated with its
private IP once it has one; the EIP is disassociated and released when the pod
goes, or kept for the StatefulSet's next pod of that name with
``tke.cloud.tencent.com/eip-claim-delete-policy: Never`` (rules: ``core.eip``).

The durable record is the EIP's own tags (cluster id, pod ``namespace/name``,
pod uid, policy, StatefulSet owner): written by the same call that allocates
it, so there is no window in which an EIP exists that a restarted ipamd cannot
attribute. The AllocateAddresses ClientToken is the pod's uid, so a replay after
a lost reply answers the same address. One work item per pod name
(``eip:<ns>/<name>``): it re-reads the EIPs tagged with that name, takes one step
(``core.eip.plan``) and queues itself again until the state is reached; any
cloud error is retried by the work queue with backoff and the next attempt
plans from what the cloud then says, so nothing is allocated twice or left
behind. A sweep every reconcile period queues every pod name our EIPs are
tagged with, which finds EIPs whose pod vanished while ipamd was down; an EIP
of ours tagged with no pod is released after ``--eip-leak-min-age``."""

from __future__ import annotations

import calendar
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from cloud.eips import Eip
from cloud.errors import CloudError
from core import eip as ce
from core.names import TAG_CLUSTER_ID
from ipamd.deps import Deps
from ipamd.kube import events as ev
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError
from ipamd.kube.informer import Informer
from ipamd.rules.records import Owner
from ipamd.workqueue import WorkQueue

log = logging.getLogger(__name__)
EIP = "eip:"
WAIT_S = 1.0

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EipPodRec:
    namespace: str
    name: str
    uid: str
    ip: str
    request: ce.EipRequest
    gone: bool  # deleting, Succeeded or Failed: its EIP goes (or is kept by Never)
    owner: Owner | None
    public_ip: str  # the annotations ipamd wrote
    eip_id: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _owner(meta: JSON) -> Owner | None:
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return Owner(
                str(ref.get("apiVersion", "")),
                str(ref.get("kind", "")),
                str(ref.get("name", "")),
                str(ref.get("uid", "")),
            )
    return None


def eip_pod_from_obj(obj: JSON) -> EipPodRec | None:
    """Only pods that ask for an EIP are kept."""
    meta = obj.get("metadata") or {}
    ann = meta.get("annotations") or {}
    request = ce.eip_request(ann, meta.get("ownerReferences"))
    if request is None:
        return None
    status = obj.get("status") or {}
    return EipPodRec(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        ip=str(status.get("podIP") or ""),
        request=request,
        gone=bool(meta.get("deletionTimestamp")) or status.get("phase") in ("Succeeded", "Failed"),
        owner=_owner(meta),
        public_ip=str(ann.get(ce.ANNOTATION_EIP_PUBLIC_IP) or ""),
        eip_id=str(ann.get(ce.ANNOTATION_EIP_ID) or ""),
    )


def age_s(created: str, now: float) -> float:
    """Seconds since an ISO 8601 UTC time (``2026-01-02T03:04:05Z``); 0 when unreadable."""
    try:
        then = calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return 0.0
    return max(0.0, now - then)


def view(e: Eip, now: float) -> ce.EipView:
    return ce.EipView(
        e.eip_id, e.public_ip, e.status, e.eni_id, e.private_ip, e.tags, age_s(e.created, now)
    )


class EipController:
    def __init__(self, deps: Deps, kube: KubeApi, queue: WorkQueue) -> None:
        self.d = deps
        self.kube = kube
        self.queue = queue
        self.pods: Informer[EipPodRec] = Informer(
            kube, paths.PODS, "pods-eip", eip_pod_from_obj, self._on_pod
        )
        self._warned: set[tuple[str, str]] = set()
        self._deleted: set[str] = set()  # pod names whose deletion the watch showed
        # AllocateAddresses attempts per pod uid: each attempt its own ClientToken (a
        # token replays its first answer, a FAILED task included); the adapter's own
        # retries of one attempt keep it, so a lost reply answers the same address
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def min_age_s(self) -> float:
        return self.d.settings.eip_leak_min_age.total_seconds()

    def _on_pod(self, key: str, old: EipPodRec | None, new: EipPodRec | None) -> None:
        with self._lock:
            if new is None and old is not None:
                self._deleted.add(key)
            elif new is not None:
                self._deleted.discard(key)
        self.queue.add(EIP + key)

    def _ours(self) -> dict[str, str]:
        return {TAG_CLUSTER_ID: self.d.settings.cluster_id}

    # --- the sweep ----------------------------------------------------------------
    def queue_all(self) -> None:
        """Queue every pod asking for an EIP and every pod name our EIPs carry;
        release our EIPs that name no pod once they are old enough."""
        for key, _ in self.pods.items():
            self.queue.add(EIP + key)
        now = time.time()
        for e in self.d.cloud.describe_eips(tags=self._ours()):
            pod_key = e.tags.get(ce.TAG_POD, "")
            if pod_key:
                self.queue.add(EIP + pod_key)
            elif e.status == "UNBIND" and age_s(e.created, now) >= self.min_age_s:
                log.warning(
                    "releasing EIP %s (%s): ours, tagged with no pod", e.eip_id, e.public_ip
                )
                self.d.cloud.release_eips([e.eip_id], gone_ok=True)
            elif e.status in ce.BOUND and age_s(e.created, now) >= self.min_age_s:
                self.d.cloud.disassociate_eip(e.eip_id, gone_ok=True)

    # --- one pod name -------------------------------------------------------------
    def sync(self, key: str) -> None:
        rec = self.pods.get(key)
        now = time.time()
        eips = self.d.cloud.describe_eips(tags={**self._ours(), ce.TAG_POD: key})
        views = [view(e, now) for e in eips]
        pod = self._pod_view(rec)
        owner_gone = False
        if pod is None and any(v.never for v in views):
            owner_gone = self._owner_gone(key, views)
        with self._lock:
            known = rec is not None or key in self._deleted
        step = ce.plan(pod, views, pod_known=known, owner_gone=owner_gone, min_age_s=self.min_age_s)
        if step.action == "done":
            with self._lock:
                self._deleted.discard(key)
        if step.action != "done":
            log.info("eip %s: %s %s %s", key, step.action, step.eip and step.eip.eip_id, step.why)
        try:
            self._do(key, rec, step)
        except CloudError as exc:
            if rec is not None:
                self._event(rec, ev.WARNING, ce.REASON_FAILED, f"{step.action}: {exc}")
            raise
        if step.action == "wait":
            delay = WAIT_S
            if step.eip is not None and step.why.startswith("younger"):
                delay = max(WAIT_S, self.min_age_s - step.eip.age_s)
            self.queue.add_after(EIP + key, delay)
        elif step.action not in ("done", "annotate"):
            self.queue.add_after(EIP + key, 0.1)

    def _pod_view(self, rec: EipPodRec | None) -> ce.PodView | None:
        if rec is None or rec.gone:
            return None
        req = rec.request
        if req.reason:
            self._warn_once(rec, req.reason, req.message)
        if req.attributes is None:
            return None
        ip_rec = self.d.state.ip(rec.ip) if rec.ip else None
        return ce.PodView(rec.uid, req.never, rec.ip, ip_rec.eni if ip_rec is not None else "")

    def _owner_gone(self, key: str, views: list[ce.EipView]) -> bool:
        namespace = key.split("/", 1)[0]
        for v in views:
            text = v.tags.get(ce.TAG_OWNER, "")
            parts = text.rsplit("/", 2)
            if len(parts) != 3:
                continue
            owner = Owner(parts[0], parts[1], parts[2], v.tags.get(ce.TAG_OWNER_UID, ""))
            return not self.d.objects.owner_exists(namespace, owner)
        return False

    def _do(self, key: str, rec: EipPodRec | None, step: ce.Step) -> None:
        cloud = self.d.cloud
        e = step.eip
        if step.action == "allocate" and rec is not None:
            self._allocate(rec)
        elif step.action == "associate" and e is not None and rec is not None:
            ip_rec = self.d.state.ip(rec.ip)
            if ip_rec is None:
                return
            cloud.associate_eip(e.eip_id, ip_rec.eni, rec.ip)
            self._event(
                rec,
                ev.NORMAL,
                ce.REASON_ASSOCIATED,
                f"EIP {e.eip_id} ({e.public_ip}) associated with {rec.ip} on {ip_rec.eni}",
            )
        elif step.action == "disassociate" and e is not None:
            cloud.disassociate_eip(e.eip_id, gone_ok=True)
            if e.never and (rec is None or rec.gone):
                self._event_key(key, ce.REASON_KEPT, f"EIP {e.eip_id} ({e.public_ip}) kept (Never)")
        elif step.action == "release" and e is not None:
            cloud.release_eips([e.eip_id], gone_ok=True)
            self._event_key(key, ce.REASON_RELEASED, f"EIP {e.eip_id} ({e.public_ip}) released")
        elif step.action == "annotate" and e is not None and rec is not None:
            self._annotate(rec, e)

    def _allocate(self, rec: EipPodRec) -> None:
        attrs = rec.request.attributes
        assert attrs is not None
        tags = {
            ce.TAG_POD: rec.key,
            ce.TAG_POD_UID: rec.uid,
            ce.TAG_POLICY: ce.POLICY_NEVER if rec.request.never else ce.POLICY_IMMEDIATE,
        }
        if rec.request.never and rec.owner is not None:
            o = rec.owner
            tags[ce.TAG_OWNER] = f"{o.api_version}/{o.kind}/{o.name}"
            tags[ce.TAG_OWNER_UID] = o.uid
        with self._lock:
            n = self._attempts.get(rec.uid, 0)
            self._attempts[rec.uid] = n + 1
            if len(self._attempts) > 10_000:
                self._attempts.clear()
        e = self.d.cloud.allocate_eip(
            bandwidth_mbps=attrs.bandwidth_mbps,
            isp=attrs.isp,
            charge_type=attrs.charge_type,
            name=rec.key,
            tags=tags,
            client_token=f"eip-{rec.uid}-{n}",
        )
        self._event(
            rec, ev.NORMAL, ce.REASON_ALLOCATED, f"EIP {e.eip_id} ({e.public_ip}) allocated"
        )

    def _annotate(self, rec: EipPodRec, e: ce.EipView) -> None:
        if (rec.public_ip, rec.eip_id) == (e.public_ip, e.eip_id):
            return
        body = {
            "metadata": {
                "annotations": {
                    ce.ANNOTATION_EIP_PUBLIC_IP: e.public_ip,
                    ce.ANNOTATION_EIP_ID: e.eip_id,
                }
            }
        }
        try:
            self.kube.patch(paths.pod(rec.namespace, rec.name), body)
        except KubeError as exc:
            if exc.not_found:
                return
            raise

    def _warn_once(self, rec: EipPodRec, reason: str, message: str) -> None:
        with self._lock:
            if (rec.uid, message) in self._warned:
                return
            self._warned.add((rec.uid, message))
            if len(self._warned) > 10_000:
                self._warned.clear()
        self._event(rec, ev.WARNING, reason, message)

    def _event(self, rec: EipPodRec, etype: str, reason: str, message: str) -> None:
        self.d.events.emit(ev.pod_ref(rec.namespace, rec.name, rec.uid), etype, reason, message)

    def _event_key(self, key: str, reason: str, message: str) -> None:
        namespace, _, name = key.partition("/")
        rec = self.pods.get(key)
        self.d.events.emit(
            ev.pod_ref(namespace, name, rec.uid if rec else ""), ev.NORMAL, reason, message
        )
