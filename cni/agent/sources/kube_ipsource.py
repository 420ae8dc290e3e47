"""``NodeIpSource`` over the Kubernetes API: this node's ``VpcENI`` and
``VpcIP`` objects (ipamd labels them ``tke.cloud.tencent.com/node=<node>``;
CRDs cannot field-select on spec), kept by ``kit.watch`` list+watch loops
(relist on 410, backoff on errors); usage goes
to ``VpcIP.status`` (merge patch of the status subresource), following the
release handshake in ``core.models``."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from core.ids import EniId, IPv4
from core.models import (
    ENI_PHASE_ATTACHED,
    IP_PHASE_RELEASED,
    VpcEniSpec,
    VpcEniStatus,
    VpcIpSpec,
    VpcIpStatus,
    rfc3339,
    unclaimed_uid,
)
from core.names import CRD_GROUP, CRD_VERSION, NODE_LABEL, PLURAL_VPC_ENI, PLURAL_VPC_IP
from kit.kubelite import KubeApiError, KubeLite, load
from kit.watch import Handlers, ListWatch, Timing, stop_all

from ..ipsource import EniInfo, IpUsage, MemoryNodeIpSource, NodeIp, NodeIpView

log = logging.getLogger(__name__)
WATCH_TIMEOUT = 300


@functools.cache
def load_kube_config(path: str) -> KubeLite:
    """The API client (``kit.kubelite``) from kubeconfig ``path``, or the
    in-cluster config when empty; one per path, shared by the agent's sources
    (its connection pool is thread-safe)."""
    return load(path)


def status_patch(u: IpUsage) -> dict[str, Any]:
    """A merge patch of ``VpcIP.status`` (``core.models.VpcIpStatus``); the pod
    fields of a previous user are cleared with explicit nulls. A grant
    (``Released``) echoes the release request id it answers; any other phase
    clears it, so no old answer outlives the grant."""
    status = VpcIpStatus(
        phase=u.phase,
        pod_namespace=u.pod_namespace,
        pod_name=u.pod_name,
        pod_uid=u.pod_uid,
        container_id=u.container_id,
        cooldown_until="" if u.cooldown_until is None else rfc3339(u.cooldown_until),
        updated=rfc3339(time.time()),
        release_id=u.release_id if u.phase == IP_PHASE_RELEASED else "",
    )
    return {"status": status.to_patch()}


def eni_of(obj: dict[str, Any]) -> EniInfo | None:
    status = VpcEniStatus.from_dict(obj.get("status"))
    if status.phase != ENI_PHASE_ATTACHED or not status.mac or not status.gateway:
        return None
    return EniInfo(
        eni_id=EniId(obj["metadata"]["name"]),
        mac=status.mac.lower(),
        subnet_cidr=status.subnet_cidr,
        gateway=IPv4(status.gateway),
        primary_ip=IPv4(status.primary_ip),
        zone=VpcEniSpec.from_dict(obj.get("spec")).zone,
        ip_capacity=status.ip_capacity or None,
    )


def ip_of(obj: dict[str, Any]) -> NodeIp:
    spec = VpcIpSpec.from_dict(obj.get("spec"))
    return NodeIp(
        ip=IPv4(obj["metadata"]["name"]),
        eni_id=EniId(spec.eni_id),
        state=spec.state,
        claim=spec.claim,
        reserved_pod_uid=spec.reserved_pod_uid,
        release_id=spec.release_id,
        unclaimed_pod_uid=unclaimed_uid(spec.claim, spec.unclaimed_pod_uid),
    )


class KubeNodeIpSource:
    def __init__(self, api: KubeLite, node_name: str) -> None:
        self.api = api
        self.node_name = node_name
        self.selector = f"{NODE_LABEL}={node_name}"
        self._mem = MemoryNodeIpSource()
        self._objs: dict[str, dict[str, dict[str, Any]]] = {PLURAL_VPC_ENI: {}, PLURAL_VPC_IP: {}}
        self._lock = threading.Lock()
        get = api.get
        self.watches = [
            ListWatch(
                get,
                f"/apis/{CRD_GROUP}/{CRD_VERSION}/{plural}",
                self._handlers(plural),
                name=plural,
                params=[("labelSelector", self.selector)],
                timing=Timing(watch_timeout=WATCH_TIMEOUT, first_backoff=1.0, max_backoff=30.0),
            )
            for plural in (PLURAL_VPC_ENI, PLURAL_VPC_IP)
        ]

    def view(self) -> NodeIpView:
        return self._mem.view()

    def wait_for_change(self, generation: int, timeout: float) -> NodeIpView:
        return self._mem.wait_for_change(generation, timeout)

    def _publish(self) -> None:
        """One view from both watches' objects. Read and set under the lock:
        the two watch threads publish at once, and a view computed earlier
        must never land after a later one."""
        with self._lock:
            enis = [e for o in self._objs[PLURAL_VPC_ENI].values() if (e := eni_of(o))]
            ips = [ip_of(o) for o in self._objs[PLURAL_VPC_IP].values()]
            enis = [
                e
                for e in enis
                if VpcEniSpec.from_dict(self._objs[PLURAL_VPC_ENI][e.eni_id].get("spec")).node_name
                in ("", self.node_name)
            ]
            ips = [
                i
                for i in ips
                if VpcIpSpec.from_dict(self._objs[PLURAL_VPC_IP][i.ip].get("spec")).node_name
                in ("", self.node_name)
            ]
            self._mem.set_view(
                sorted(enis, key=lambda e: e.eni_id), sorted(ips, key=lambda i: i.ip)
            )

    def _handlers(self, plural: str) -> Handlers:
        def replace(items: list[dict[str, Any]]) -> None:
            with self._lock:
                self._objs[plural] = {o["metadata"]["name"]: o for o in items}
            self._publish()

        def put(obj: dict[str, Any]) -> None:
            with self._lock:
                self._objs[plural][obj["metadata"]["name"]] = obj
            self._publish()

        def drop(obj: dict[str, Any]) -> None:
            with self._lock:
                self._objs[plural].pop(obj["metadata"]["name"], None)
            self._publish()

        return Handlers(replace=replace, added=put, modified=put, deleted=drop)

    def held(self) -> dict[str, dict[str, Any]]:
        """Each of this node's VpcIPs' status as the watch last saw it (what the
        API holds): the reporter's periodic pass compares its usage with it."""
        with self._lock:
            return {n: dict(o.get("status") or {}) for n, o in self._objs[PLURAL_VPC_IP].items()}

    def report(self, usage: Sequence[IpUsage]) -> None:
        for u in usage:
            try:
                self.api.call(
                    "PATCH",
                    f"/apis/{CRD_GROUP}/{CRD_VERSION}/{PLURAL_VPC_IP}/{u.ip}/status",
                    body=status_patch(u),
                    content_type="application/merge-patch+json",
                )
            except KubeApiError as exc:
                if exc.status == 404:
                    continue  # ipamd deleted it: nothing to report
                raise

    def start(self, sync_timeout: float = 10.0) -> None:
        """Start the watches; wait (bounded) for both first lists, so the
        start-up pass sees the node's ENIs."""
        for w in self.watches:
            w.start()
        deadline = time.monotonic() + sync_timeout
        if not all(w.synced.wait(max(0.0, deadline - time.monotonic())) for w in self.watches):
            log.warning("VpcENI/VpcIP not listed yet; starting with what is known")

    def stop(self, timeout: float = 5.0) -> None:
        stop_all(self.watches, timeout)
