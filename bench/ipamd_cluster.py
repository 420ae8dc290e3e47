"""What the ipamd benchmark does in the cluster: the objects it creates (through ipamd's
own API client; the manifests and the emulated world come from the test bed's
``harness.ipamd_world``) and the node agent it plays (``FastAgent``: status writes of
the VpcIP contract in core/models.py, without a real node).

The tests have a fuller agent stand-in (tests/integration/ipamd_harness.py, with faults
and network namespaces); the benchmark never imports the tests, so it keeps this small
one, tuned for throughput: picks under a lock, writes outside it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from core import models as m
from core import names
from harness.ipamd_world import node_manifest, pod_manifest, subnets_configmap
from harness.kubeobjects import apply_crds
from harness.waits import wait_for as harness_wait_for
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError, load_configuration
from ipamd.kube.informer import Informer
from ipamd.rules.records import IpRec, ip_from_obj

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1
) -> T:
    """A bounded wait; an apiserver refusal (``KubeError``) counts as "not yet"."""
    return harness_wait_for(what, fn, timeout, interval, tolerate=(KubeError,))


def now3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class BenchKube:
    """The benchmark's objects in the apiserver."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = KubeApi(load_configuration(str(kubeconfig)))

    def install_crds(self) -> None:
        from kubernetes import config

        apply_crds(config.new_client_from_config(str(self.kubeconfig)))

    def wipe(self) -> None:
        """A clean slate: ipamd's objects, Nodes, Pods, the ConfigMaps and the Lease."""
        for c in self.api.get(paths.CLAIMS).get("items", []):
            meta = c["metadata"]
            p = paths.claim(meta["namespace"], meta["name"])
            with contextlib.suppress(KubeError):
                self.api.patch(p, {"metadata": {"finalizers": None}})
            self.api.delete(p)
        for o in self.api.get(paths.PODS).get("items", []):
            self.delete_pod(o["metadata"]["name"], o["metadata"]["namespace"])
        for base in (paths.VPC_IPS, paths.VPC_ENIS, paths.NODES):
            self.api._call("DELETE", base, timeout=300)  # deletecollection
        for name in (names.CONFIGMAP_NAME, m.SUBNET_STATUS_CONFIGMAP):
            self.api.delete(paths.configmap(names.CONFIGMAP_NAMESPACE, name))
        self.api.delete(paths.lease("kube-system", "tke-eni-ipamd"))

    def set_subnets(self, subnet_ids: str) -> None:
        body = subnets_configmap(subnet_ids)
        try:
            self.api.create(f"/api/v1/namespaces/{names.CONFIGMAP_NAMESPACE}/configmaps", body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            self.api.replace(paths.configmap(names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME), body)

    def add_node(self, name: str, instance_id: str, zone: str) -> None:
        self.api.create(paths.NODES, node_manifest(name, instance_id, zone))

    def add_pod(self, name: str, node: str) -> dict[str, Any]:
        """A static-IP pod of a StatefulSet on ``node``."""
        return self.api.create("/api/v1/namespaces/default/pods", pod_manifest(name, node))

    def delete_pod(self, name: str, ns: str = "default") -> None:
        with contextlib.suppress(KubeError):
            self.api._call("DELETE", paths.pod(ns, name), query=[("gracePeriodSeconds", 0)])

    def vpcips(self, node: str | None = None) -> list[dict[str, Any]]:
        sel = f"{names.NODE_LABEL}={node}" if node else ""
        return [
            o for page, _ in self.api.list_pages(paths.VPC_IPS, label_selector=sel) for o in page
        ]


class FastAgent:
    """Per-node free lists from a VpcIP watch; picks under a lock, writes outside it.
    Answers every release request of an address not in use (echoing its
    ``spec.releaseId``, as core/models.py asks)."""

    def __init__(self, kube: BenchKube) -> None:
        self.kube = kube
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.free: dict[str, set[str]] = defaultdict(set)
        self.busy: set[str] = set()
        self.inf: Informer[IpRec] = Informer(
            kube.api, paths.VPC_IPS, "bench-agent", ip_from_obj, self._on
        )

    def _on(self, key: str, old: IpRec | None, new: IpRec | None) -> None:
        with self.lock:
            if old is not None:
                self.free[old.node].discard(key)
            if new is None:
                return
            if new.state == m.IP_STATE_ASSIGNED and not new.claim and key not in self.busy:
                self.free[new.node].add(key)
            elif key not in self.busy:
                self._grant_if_asked(new)

    def _grant_if_asked(self, rec: IpRec) -> None:
        if rec.state == m.IP_STATE_RELEASING and rec.release_id and not rec.release_granted:
            answer = {"phase": m.IP_PHASE_RELEASED, "releaseId": rec.release_id}
            threading.Thread(target=self._status, args=(rec.ip, answer), daemon=True).start()

    def _status(self, ip: str, st: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the IP may be gone
            self.kube.api.patch(
                paths.vpc_ip(ip) + "/status", {"status": {**st, "updated": now3339()}}
            )

    # --- dynamic pods (churn) ---
    def start(self, node: str, uid: str) -> str | None:
        with self.lock:
            if not self.free[node]:
                return None
            ip = self.free[node].pop()
            self.busy.add(ip)
        self._status(ip, {"phase": m.IP_PHASE_IN_USE, "podUid": uid})
        return ip

    def stop_pod(self, ip: str) -> None:
        self._status(ip, {"phase": m.IP_PHASE_FREE, "podUid": None})
        with self.lock:
            self.busy.discard(ip)
            rec = self.inf.get(ip)
            if rec is not None and rec.state == m.IP_STATE_ASSIGNED and not rec.claim:
                self.free[rec.node].add(ip)
            elif rec is not None:
                self._grant_if_asked(rec)

    # --- static pods (CNI ADD/DEL of a claimed address) ---
    def static_ready(self, key: str, uid: str, node: str) -> IpRec | None:
        """The claim ``key``'s address, reserved for pod ``uid`` on ``node``."""
        for rec in self.inf.values():
            if (
                rec.claim == key
                and rec.reserved_uid == uid
                and rec.node == node
                and rec.state == m.IP_STATE_ASSIGNED
            ):
                return rec
        return None

    def use(self, ip: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with self.lock:
            self.busy.add(ip)
        self._status(
            ip,
            {
                "phase": m.IP_PHASE_IN_USE,
                "podUid": meta["uid"],
                "podName": meta["name"],
                "podNamespace": meta["namespace"],
            },
        )

    def free_static(self, ip: str) -> None:
        self._status(
            ip, {"phase": m.IP_PHASE_FREE, "podUid": None, "podName": None, "podNamespace": None}
        )
        with self.lock:
            self.busy.discard(ip)
            rec = self.inf.get(ip)
            if rec is not None:
                self._grant_if_asked(rec)
