"""The agent's CNI verbs: one method per verb over the pool state, the IP
source, the pod source and the data plane.

ADD: pick the IP and record it durably (checkpoint) before any netlink work,
then plumb; a crash between any two steps leaves a record the next start
reconciles against the live links (no leak, no double assignment), and a
retried ADD of the same container reuses its IP. DEL is idempotent."""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from core.claimpolicy import claim_policy
from core.names import (
    ANNOTATION_NETWORKS,
    NETWORK_ROUTE_ENI,
)
from core.podnetwork import takes_eni_ip

from . import delegate, pool
from .checkpoint import Checkpoint, CheckpointError
from .cnitypes import (
    ERR_CHECK_FAILED,
    ERR_INVALID_CONFIG,
    ERR_IO,
    ERR_NOT_AVAILABLE,
    ERR_TRY_AGAIN,
    ERR_UNKNOWN_CONTAINER,
    SUPPORTED_VERSIONS,
    VALID_ATTACHMENTS_KEY,
    CniError,
    CniRequest,
    build_result,
    ips_of_result,
)
from .dataplane.netops import EniLink, NetOps
from .dataplane.nsutil import NetnsGoneError
from .ipsource import NodeIp, NodeIpSource, NodeIpView
from .metrics import Metrics
from .pods import PodInfo, PodLookupError, PodSource
from .pool import Allocation, PoolState
from .recover import Recovery

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    eni_only: bool = False
    cooldown: float = 150.0
    static_ip_wait: float = 30.0
    refill_wait: float = 0.0  # seconds ADD waits for a free dynamic IP (0 = fail at once)
    host_veth_prefix: str = "tke"
    fault: str = ""  # test hook: SIGKILL self at this ADD step


def _log_event(kind: str, reason: str, message: str) -> None:
    log.info(
        "event (no Kubernetes event path)", extra={"type": kind, "reason": reason, "text": message}
    )


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        source: NodeIpSource,
        pods: PodSource | None,
        netops: NetOps,
        state: PoolState,
        checkpoint_path: str,
        metrics: Metrics | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.pods = pods
        self.net = netops
        self.state = state
        self.lock = threading.Lock()
        self.checkpoint = Checkpoint(checkpoint_path, self._snapshot)
        self.metrics = metrics or Metrics()
        self.on_change = on_change
        # IP -> ADDs of it running (reservation to reply); a retried ADD can
        # overlap the first, so a count, not a set: the reconcile loop leaves
        # these IPs alone
        self.in_flight: Counter[str] = Counter()
        self.add_epoch = 0  # bumped when an ADD ends: the reconcile loop's race guard
        self.add_ended: dict[str, int] = {}  # IP -> add_epoch when its last ADD ended
        self.eni_links: dict[str, EniLink] = {}
        self.ready = threading.Event()
        self.recovery = Recovery()  # begun by the caller when the checkpoint is not usable
        # (type "Normal"/"Warning", reason, message): the node's Events when
        # the agent has an API client (kube_events), else only logged
        self.events: Callable[[str, str, str], None] = _log_event
        self._fault_fired = False
        netops.fault = self.fault

    # --- helpers ---------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.state.to_dict()

    def fault(self, step: str) -> None:
        """Test hook: ``--fault <step>`` SIGKILLs the agent there; ``--fault
        error:<step>`` raises a NetlinkError there, once."""
        if not self.settings.fault:
            return
        if self.settings.fault == step:
            log.warning("fault injection: killing the agent", extra={"step": step})
            os.kill(os.getpid(), signal.SIGKILL)
        if self.settings.fault == f"error:{step}" and not self._fault_fired:
            self._fault_fired = True
            log.warning("fault injection: netlink error", extra={"step": step})
            raise NetlinkError(errno.EIO, f"fault injection at {step}")

    def eni_link(self, eni_id: str, view: NodeIpView) -> EniLink:
        link = self.eni_links.get(eni_id)
        if link is not None:
            return link
        eni = view.eni(eni_id)
        if eni is None:
            raise CniError(ERR_TRY_AGAIN, f"ENI {eni_id} is not known on this node yet")
        link, drift = self.net.ensure_eni(eni, self.net.links_by_mac())
        if link is None:
            raise CniError(
                ERR_TRY_AGAIN,
                f"ENI {eni_id} (mac {eni.mac}) has no link on this node yet",
                "; ".join(drift),
            )
        self.eni_links[eni_id] = link
        return link

    def _pod(self, req: CniRequest) -> PodInfo | None:
        if self.pods is None or not req.pod_namespace or not req.pod_name:
            return None
        try:
            return self.pods.get(req.pod_namespace, req.pod_name, req.pod_uid)
        except PodLookupError as exc:
            raise CniError(
                ERR_TRY_AGAIN, f"cannot read pod {req.pod_namespace}/{req.pod_name}: {exc}"
            ) from exc

    def _delegates(self, req: CniRequest) -> list[dict[str, Any]]:
        return delegate.delegates_of(req.conf)

    # --- verbs -------------------------------------------------------------
    def handle(self, req: CniRequest) -> dict[str, Any] | None:
        if req.command == "VERSION":
            return {"cniVersion": req.cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
        if req.command == "STATUS":
            self.status()
            return None
        if req.command == "GC":
            self.gc(req)
            return None
        try:
            if req.command == "ADD":
                return self.add(req)
            if req.command == "DEL":
                self.delete(req)
            else:
                self.check(req)
            return None
        except NetnsGoneError as exc:
            raise CniError(ERR_UNKNOWN_CONTAINER, str(exc)) from exc
        except CheckpointError as exc:
            raise CniError(ERR_IO, str(exc), "is the state dir writable and not full?") from exc
        except NetlinkError as exc:
            raise CniError(ERR_IO, f"{req.command} {req.container_id}: netlink: {exc}") from exc
        except OSError as exc:
            raise CniError(ERR_IO, f"{req.command} {req.container_id}: {exc}") from exc

    def add(self, req: CniRequest) -> dict[str, Any] | None:
        pod = self._pod(req)
        annotations = pod.annotations if pod else {}
        # (the runtime never calls CNI for a hostNetwork pod)
        if not takes_eni_ip(
            annotations, host_network=False, eni_only_cluster=self.settings.eni_only
        ):
            delegates = self._delegates(req)
            if not delegates:
                raise CniError(
                    ERR_INVALID_CONFIG,
                    f"pod {req.pod_namespace}/{req.pod_name} does not ask for an ENI IP "
                    f"(annotation {ANNOTATION_NETWORKS}: {NETWORK_ROUTE_ENI}) and no "
                    f"{delegate.DELEGATE_KEY} are configured",
                    "annotate the pod, run the agent with --eni-only, or set --delegate-file",
                )
            return delegate.run(req, delegates)
        verdict = claim_policy(annotations, pod.owner_references if pod else ())
        if verdict.reason:  # ipamd emits the Warning on the pod; the agent logs it
            log.info(
                "claim policy not honoured",
                extra={"pod": f"{req.pod_namespace}/{req.pod_name}", "why": verdict.message},
            )
        static = verdict.static
        claim = f"{req.pod_namespace}/{req.pod_name}" if static else ""
        pod_uid = req.pod_uid or (pod.uid if pod else "")
        alloc, seq, replaced = self._reserve(req, claim, pod_uid)
        # from here on every path, error or not, ends in the ``finally`` that
        # clears the in-flight mark: a mark left behind would stop the
        # reconcile loop's clean-up for good
        try:
            self._clean_earlier(replaced)
            self.fault("after-reserve")
            link = self._wait_eni_link(alloc.eni_id)
            att = self.net.add_pod(alloc, link.table)
            self.checkpoint.wait(seq)  # written while we plumbed
            self.fault("before-reply")
        except BaseException:
            self._undo(alloc)
            raise
        finally:
            with self.lock:
                self.in_flight[alloc.ip] -= 1
                if self.in_flight[alloc.ip] <= 0:
                    del self.in_flight[alloc.ip]
                self.add_epoch += 1
                self.add_ended[alloc.ip] = self.add_epoch
        self.on_change()
        log.info(
            "pod attached",
            extra={
                "ip": alloc.ip,
                "pod": f"{alloc.pod_namespace}/{alloc.pod_name}",
                "container": req.container_id,
                "veth": alloc.host_veth,
                "eni": alloc.eni_id,
            },
        )
        return build_result(req.cni_version, att, req.prev_result)

    def _wait_eni_link(self, eni_id: str) -> EniLink:
        """``eni_link``, waiting (bounded by ``--refill-wait``) while the ENI
        ipamd just attached has no link on the node yet: a burst that takes
        the IPs of a new ENI does not fail its sandboxes for the attach's
        last step."""
        deadline = time.monotonic() + self.settings.refill_wait
        said = False
        while True:
            try:
                return self.eni_link(eni_id, self.source.view())
            except CniError as exc:
                if exc.code != ERR_TRY_AGAIN or time.monotonic() >= deadline:
                    raise
                if not said:
                    said = True
                    log.info(
                        f"{exc.msg}: waiting up to {self.settings.refill_wait:g}s for it",
                        extra={"eni": eni_id},
                    )
            time.sleep(0.2)

    def _clean_earlier(self, replaced: list[Allocation]) -> None:
        """Rules of earlier sandboxes whose IPs ``_reserve`` released. A failure
        does not fail the ADD: their link is replaced by the new one and the
        reconcile loop removes rules no allocation explains."""
        for old in replaced:
            try:
                self.fault("clean-earlier")
                self.net.del_pod(old.ip, old.host_veth)
            except (NetlinkError, OSError) as exc:
                log.warning(
                    "rules of an earlier sandbox not removed (the reconcile loop retries)",
                    extra={"ip": old.ip, "veth": old.host_veth, "error": str(exc)},
                )

    def _find(self, req: CniRequest) -> Allocation | None:
        """The allocation of this container (caller holds the lock). One rebuilt
        from the live links (no container id) is adopted by the sandbox it
        serves: same netns, same interface, same host veth name."""
        alloc = self.state.by_container(req.container_id, req.ifname)
        if alloc is not None or not req.netns:
            return alloc
        veth = pool.host_veth_name(
            self.settings.host_veth_prefix,
            req.pod_namespace,
            req.pod_name,
            req.container_id,
            req.ifname,
        )
        for cand in self.state.allocations.values():
            if cand.container_id or (cand.netns, cand.ifname, cand.host_veth) != (
                req.netns,
                req.ifname,
                veth,
            ):
                continue
            cand.container_id = req.container_id
            cand.pod_namespace = cand.pod_namespace or req.pod_namespace
            cand.pod_name = cand.pod_name or req.pod_name
            cand.pod_uid = cand.pod_uid or req.pod_uid
            self.checkpoint.mark()
            log.info(
                "allocation rebuilt from the links adopted by its sandbox",
                extra={"ip": cand.ip, "container": req.container_id, "veth": veth},
            )
            return cand
        return None

    def _reserve(
        self, req: CniRequest, claim: str, pod_uid: str
    ) -> tuple[Allocation, int, list[Allocation]]:
        deadline = time.monotonic() + self.settings.static_ip_wait
        view = self.source.view()
        unclaimed = False
        refill_deadline: float | None = None
        while True:
            with self.lock:
                existing = self._find(req)
                if existing is not None:  # a retried ADD: same IP, re-plumbed
                    self.in_flight[existing.ip] += 1
                    return existing, self.checkpoint.mark(), []
                blocked = self.recovery.blocking()
                if blocked:
                    raise CniError(
                        ERR_TRY_AGAIN,
                        blocked,
                        "the reconcile loop looks again every pass; a link that never "
                        "explains itself must be removed by hand (see docs/cni.md)",
                    )
                now = time.time()
                veth = pool.host_veth_name(
                    self.settings.host_veth_prefix,
                    req.pod_namespace,
                    req.pod_name,
                    req.container_id,
                    req.ifname,
                )
                if claim and pool.unclaimed(view, self.state, pod_uid):
                    # its claim was deleted while it ran (core.models): dynamic now,
                    # and the address it kept is its own
                    log.info(
                        "pod's claim was deleted while it ran: it keeps a dynamic IP",
                        extra={"pod": f"{req.pod_namespace}/{req.pod_name}", "uid": pod_uid},
                    )
                    claim, unclaimed = "", True
                if claim:
                    chosen, holder = pool.choose_static(view, self.state, claim, pod_uid)
                elif unclaimed:
                    chosen, holder = pool.choose_unclaimed(view, self.state, pod_uid, veth, now)
                else:
                    chosen, holder = self._choose_dynamic(view, now), None
                if chosen is not None:
                    replaced = self._release_earlier_sandboxes(
                        veth, req, now, keep=chosen.ip if holder is not None else ""
                    )
                    if holder is not None and self.state.allocations.get(chosen.ip) is holder:
                        log.info(
                            "IP taken over from an earlier sandbox of the same pod",
                            extra={"ip": chosen.ip, "container": holder.container_id},
                        )
                        del self.state.allocations[chosen.ip]
                    if unclaimed:  # its own address: its cooldown is for other pods
                        self.state.cooldown.pop(chosen.ip, None)
                    alloc = Allocation(
                        ip=chosen.ip,
                        eni_id=chosen.eni_id,
                        container_id=req.container_id,
                        ifname=req.ifname,
                        netns=req.netns,
                        host_veth=veth,
                        pod_namespace=req.pod_namespace,
                        pod_name=req.pod_name,
                        pod_uid=pod_uid,
                        claim=claim,
                        created=now,
                    )
                    self.state.allocations[alloc.ip] = alloc
                    self.in_flight[alloc.ip] += 1
                    return alloc, self.checkpoint.mark(), replaced
            if not claim:
                first = refill_deadline is None
                refill_deadline = refill_deadline or time.monotonic() + self.settings.refill_wait
                view = self._wait_for_free_ip(
                    req, view, self._refill_deadline(refill_deadline), first=first
                )
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CniError(
                    ERR_TRY_AGAIN,
                    f"the IP of claim {claim} is not on this node yet "
                    f"(waited {self.settings.static_ip_wait:g}s)",
                    "ipamd moves a static pod's IP to its new node; the runtime retries",
                )
            view = self.source.wait_for_change(view.generation, remaining)

    def _choose_dynamic(self, view: NodeIpView, now: float) -> NodeIp | None:
        """``pool.choose_dynamic``, saying when it gave a cooling IP past
        ``--cooldown-floor`` (nothing else was free). Caller holds the lock."""
        chosen = pool.choose_dynamic(view, self.state, now)
        if chosen is not None and pool.cooling(self.state, chosen.ip, now):
            self.metrics.floor_reuses.inc()
            log.info(
                "no free IP: reusing a cooling IP past the cooldown floor",
                extra={
                    "ip": chosen.ip,
                    "cooldown_left_s": round(self.state.cooldown[chosen.ip] - now, 1),
                },
            )
        return chosen

    def _refill_deadline(self, base: float) -> float:
        """``base`` (``--refill-wait`` after the ADD began to wait); later while
        a cooling IP becomes reusable (its floor passes) within twice that,
        up to three times the bound in all: the scheduler may place a pod a
        moment before the node's allocatable shows the IP it counted on is
        gone (the kubelet writes allocatable on its status loop), and during
        a rollout the floors of the replaced pods' IPs keep passing."""
        wait = self.settings.refill_wait
        if wait <= 0:
            return base
        now = time.time()
        with self.lock:
            soonest = pool.next_reusable(self.state, now)
        if soonest is None or soonest - now > 2 * wait:
            return base
        return min(max(base, time.monotonic() + soonest - now + 1.0), base + 2 * wait)

    def _wait_for_free_ip(
        self, req: CniRequest, view: NodeIpView, deadline: float, *, first: bool
    ) -> NodeIpView:
        """No free dynamic IP: wait (bounded by ``--refill-wait``) for ipamd's
        refill or a cooldown's end instead of failing the sandbox; code 11 past
        the bound. Returns the view to try again with."""
        counts = pool.counts(view, self.state, time.time())
        what = (
            f"no free IP on this node ({counts.in_use} in use, "
            f"{counts.cooldown} cooling down, {counts.total} total)"
        )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if self.settings.refill_wait > 0:
                self.metrics.refill_waits.labels("timeout").inc()
                what += " after waiting for ipamd's refill or a cooldown"
            raise CniError(
                ERR_TRY_AGAIN, what, "ipamd refills the warm pool; the runtime retries"
            )
        if first:
            self.metrics.refill_waits.labels("waited").inc()
            log.info(
                f"{what}: waiting up to {remaining:.0f}s for ipamd's refill or a cooldown",
                extra={"pod": f"{req.pod_namespace}/{req.pod_name}", "container": req.container_id},
            )
        # 0.5 s: a cooldown ends without a change of the view
        return self.source.wait_for_change(view.generation, min(remaining, 0.5))

    def _release_earlier_sandboxes(
        self, veth: str, req: CniRequest, now: float, keep: str = ""
    ) -> list[Allocation]:
        """An earlier sandbox of the same pod (same host veth name) whose DEL has
        not come yet: its link is about to be replaced, so its dynamic IP is
        released now (under the state lock; the caller removes its rules).
        ``keep``: the IP the new sandbox takes over from it."""
        released: list[Allocation] = []
        for old in [a for a in self.state.allocations.values() if a.host_veth == veth]:
            if old.key == (req.container_id, req.ifname) or old.ip in self.in_flight:
                continue
            if old.ip == keep:
                continue  # taken over by the new sandbox (the caller)
            log.info(
                "earlier sandbox of the same pod released",
                extra={"ip": old.ip, "container": old.container_id, "veth": veth},
            )
            if old.claim:
                continue  # a static IP: choose_static hands it over to the new sandbox
            pool.release(self.state, old.ip, now, self.settings.cooldown)
            released.append(old)
        return released

    def _undo(self, alloc: Allocation) -> None:
        """ADD failed after the reservation: take the plumbing back and free the
        IP (it never served a pod, so no cooldown)."""
        try:
            self.net.del_pod(alloc.ip, alloc.host_veth, delete_link=True)
        except Exception as exc:  # noqa: BLE001 - the reconcile loop retries the clean-up
            log.warning("undo of failed ADD incomplete", extra={"ip": alloc.ip, "error": str(exc)})
        with self.lock:
            if self.state.allocations.get(alloc.ip) is alloc:
                del self.state.allocations[alloc.ip]
            self.checkpoint.mark()

    def delete(self, req: CniRequest) -> None:
        with self.lock:
            alloc = self._find(req)
        if alloc is None:
            delegates = self._delegates(req)
            if delegates:
                delegate.run(req, delegates)
            return
        self._teardown(alloc, delete_link=False)
        log.info("pod detached", extra={"ip": alloc.ip, "container": req.container_id})

    def _teardown(self, alloc: Allocation, delete_link: bool) -> None:
        self.net.del_pod(alloc.ip, alloc.host_veth, delete_link=delete_link)
        with self.lock:
            if self.state.allocations.get(alloc.ip) is alloc:
                pool.release(self.state, alloc.ip, time.time(), self.settings.cooldown)
            # not waited for: a lost release is redone at start (the link is gone)
            self.checkpoint.mark()
        self.on_change()

    def check(self, req: CniRequest) -> None:
        with self.lock:
            alloc = self._find(req)
        if alloc is None:
            delegates = self._delegates(req)
            if delegates:
                delegate.run(req, delegates)
                return
            raise CniError(
                ERR_UNKNOWN_CONTAINER,
                f"container {req.container_id} ({req.ifname}) has no IP on this node",
            )
        ips = ips_of_result(req.prev_result)
        if alloc.ip not in ips:
            raise CniError(ERR_CHECK_FAILED, f"prevResult has {ips}, the agent gave {alloc.ip}")
        ifaces = {
            (i.get("name"), i.get("sandbox") or "")
            for i in (req.prev_result or {}).get("interfaces") or []
            if isinstance(i, dict)
        }
        for want in ((alloc.host_veth, ""), (alloc.ifname, alloc.netns)):
            if want not in ifaces:
                raise CniError(
                    ERR_CHECK_FAILED,
                    f"prevResult lacks interface {want[0]!r}"
                    + (f" in sandbox {want[1]!r}" if want[1] else " on the host"),
                )
        link = self.eni_link(alloc.eni_id, self.source.view())
        self.net.check_pod(alloc, link.table)

    def status(self) -> None:
        if not self.ready.is_set():
            raise CniError(ERR_NOT_AVAILABLE, "tke-eni-agent is starting (host set-up not done)")
        if not self.source.view().enis:
            raise CniError(
                ERR_NOT_AVAILABLE, "no ENI is attached to this node yet", "ipamd attaches ENIs"
            )

    def gc(self, req: CniRequest) -> None:
        """Release attachments the runtime no longer knows (CNI GC)."""
        valid = req.conf.get(VALID_ATTACHMENTS_KEY)
        if not isinstance(valid, list) or req.conf.get("disableGC") is True:
            return
        keep = {
            (str(v.get("containerID")), str(v.get("ifname"))) for v in valid if isinstance(v, dict)
        }
        with self.lock:
            stale = [
                a
                for a in self.state.allocations.values()
                if a.key not in keep
                and a.ip not in self.in_flight
                and a.container_id  # rebuilt from the links: its container is not known
            ]
        for alloc in stale:
            log.info(
                "gc: runtime no longer knows the attachment",
                extra={"ip": alloc.ip, "container": alloc.container_id},
            )
            self._teardown(alloc, delete_link=True)
            self.metrics.gc.labels("cni-gc").inc()
