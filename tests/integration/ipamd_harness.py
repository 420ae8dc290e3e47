"""Test support for ipamd against the real kube-apiserver and the cloud
emulator: CRD install, a clean slate per test, ipamd in-process, and
``AgentStandIn`` — the node agent's side of the contract in core/models.py
(status writes), which the tests play themselves. These are built on ipamd's
own API client, informer and record parser, so they stay with the tests; what
the benchmark shares with the tests (the emulated world, ipamd as a process,
bounded waits) is in the test bed's ``harness`` package."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core import models as m
from core import names
from harness.ipamd_world import (
    CLUSTER,
    VPC,
    node_manifest,
    pod_manifest,
    subnets_configmap,
)
from harness.waits import wait_for as harness_wait_for
from ipamd.app import App
from ipamd.config import load
from ipamd.controllers.necctl import NECS
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError, load_configuration
from ipamd.kube.informer import Informer
from ipamd.rules.records import IpRec, ip_from_obj
from tests.integration.podnetns import PodNetns
from vpcsim.testing import EmulatorHandle

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1
) -> T:
    """The harness's bounded wait, an apiserver refusal (``KubeError``) counting as "not yet"."""
    return harness_wait_for(what, fn, timeout, interval, tolerate=(KubeError,))


def now3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kube:
    """Test-side API helpers (raw JSON through ipamd's own thin client)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = KubeApi(load_configuration(str(kubeconfig)))

    def install_crds(self) -> None:
        for f in sorted(CRD_DIR.glob("*.yaml")):
            body = yaml.safe_load(f.read_text())
            path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
            try:
                self.api.create(path, body)
            except KubeError as exc:
                if not exc.conflict:
                    raise
                cur = self.api.get(f"{path}/{body['metadata']['name']}")
                body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
                self.api.replace(f"{path}/{body['metadata']['name']}", body)
        for plural in (paths.VPC_IPS, paths.VPC_ENIS, paths.CLAIMS, NECS):
            wait_for(f"CRD {plural} served", lambda p=plural: self._served(p), 30)

    def _served(self, path: str) -> bool:
        try:
            self.api.get(path)
            return True
        except KubeError:
            return False

    def wipe(self) -> None:
        """A clean slate: ipamd's objects, nodes, pods of test namespaces, ConfigMaps, Lease."""
        for c in self.api.get(paths.CLAIMS).get("items", []):
            meta = c["metadata"]
            p = paths.claim(meta["namespace"], meta["name"])
            with contextlib.suppress(KubeError):
                self.api.patch(p, {"metadata": {"finalizers": None}})
            self.api.delete(p)
        for base in (paths.VPC_IPS, paths.VPC_ENIS, NECS, paths.NODES):
            for o in self.api.get(base).get("items", []):
                self.api.delete(f"{base}/{o['metadata']['name']}")
        for o in self.api.get(paths.PODS).get("items", []):
            ns, name = o["metadata"]["namespace"], o["metadata"]["name"]
            self.api._call("DELETE", paths.pod(ns, name), query=[("gracePeriodSeconds", 0)])
        for name in (names.CONFIGMAP_NAME, m.SUBNET_STATUS_CONFIGMAP):
            self.api.delete(paths.configmap(names.CONFIGMAP_NAMESPACE, name))
        self.api.delete(paths.lease("kube-system", "tke-eni-ipamd"))
        for o in self.api.get("/apis/apps/v1/statefulsets").get("items", []):
            meta = o["metadata"]
            self.api.delete(
                f"/apis/apps/v1/namespaces/{meta['namespace']}/statefulsets/{meta['name']}"
            )
        for o in self.api.get("/api/v1/namespaces/default/events").get("items", []):
            self.api.delete(f"/api/v1/namespaces/default/events/{o['metadata']['name']}")
        for o in self.api.get("/api/v1/namespaces/kube-system/events").get("items", []):
            self.api.delete(f"/api/v1/namespaces/kube-system/events/{o['metadata']['name']}")

    # --- objects ---
    def set_subnets(self, subnet_ids: str, vpc: str = VPC, **extra: str) -> None:
        body = subnets_configmap(subnet_ids, vpc, **extra)
        p = paths.configmap(names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
        try:
            self.api.create(f"/api/v1/namespaces/{names.CONFIGMAP_NAMESPACE}/configmaps", body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            self.api.replace(p, body)

    def add_node(self, name: str, instance_id: str, zone: str | None = None) -> None:
        self.api.create(paths.NODES, node_manifest(name, instance_id, zone))

    def delete_node(self, name: str) -> None:
        self.api.delete(paths.node(name))

    def add_pod(
        self,
        name: str,
        node: str,
        *,
        ns: str = "default",
        policy: str | None = "Never",
        annotations: dict[str, str] | None = None,
        owner: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.api.create(
            f"/api/v1/namespaces/{ns}/pods",
            pod_manifest(name, node, ns=ns, policy=policy, annotations=annotations, owner=owner),
        )

    def delete_pod(self, name: str, ns: str = "default") -> None:
        with contextlib.suppress(KubeError):
            self.api._call("DELETE", paths.pod(ns, name), query=[("gracePeriodSeconds", 0)])

    def claim(self, name: str, ns: str = "default") -> dict[str, Any] | None:
        return self.api.get_or_none(paths.claim(ns, name))

    def vpcips(self, node: str | None = None) -> list[dict[str, Any]]:
        sel = f"{names.NODE_LABEL}={node}" if node else ""
        return [
            o for page, _ in self.api.list_pages(paths.VPC_IPS, label_selector=sel) for o in page
        ]

    def vpcenis(self, node: str | None = None) -> list[dict[str, Any]]:
        sel = f"{names.NODE_LABEL}={node}" if node else ""
        return [
            o for page, _ in self.api.list_pages(paths.VPC_ENIS, label_selector=sel) for o in page
        ]

    def events(self, ns: str, reason: str | None = None) -> list[dict[str, Any]]:
        items = self.api.get(f"/api/v1/namespaces/{ns}/events").get("items", [])
        return [e for e in items if reason is None or e.get("reason") == reason]

    def subnet_status(self) -> list[m.SubnetStatus]:
        cm = self.api.get_or_none(
            paths.configmap(names.CONFIGMAP_NAMESPACE, m.SUBNET_STATUS_CONFIGMAP)
        )
        if cm is None:
            return []
        return m.load_subnet_statuses((cm.get("data") or {}).get(m.SUBNET_STATUS_KEY, "[]"))

    def node_condition(self, node: str) -> dict[str, Any] | None:
        obj = self.api.get(paths.node(node))
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == names.NODE_CONDITION_ENI_READY:
                return c  # type: ignore[no-any-return]
        return None


class AgentDeadError(AssertionError):
    """The test asked a dead agent stand-in to play CNI ADD/DEL."""


#: how the stand-in answers a release request (per node, ``set_policy``)
GRANT, HOLD, REFUSE = "grant", "hold", "refuse"


class AgentStandIn:
    """The node agent's half of the release handshake (core/models.py): grants
    ``spec.state=Releasing`` with ``status.phase=Released`` when the IP is not
    in use; ``use``/``free`` play CNI ADD/DEL.

    Faults, per node (``None``: every node without its own setting):

    * ``set_policy(GRANT, delay=s)`` answers after ``s`` seconds;
    * ``set_policy(HOLD)`` leaves requests unanswered (``asked()`` lists them;
      ``grant(ip)`` answers one, going back to GRANT answers all);
    * ``set_policy(REFUSE)`` answers with its current phase, never ``Released``
      (``refused`` counts the answers);
    * ``die(node)``: the node's agent stops answering and cannot do ADD/DEL;
      ``restart(node)`` brings it back and it answers what is open (a start-up pass).

    Every grant is written by ``_grant_status`` (the one place that knows the
    shape of the answer); ``_answered`` says whether a record already carries
    the answer to its open request.

    With ``netns`` (tests/integration/podnetns.py) the stand-in really binds:
    each ADD (``use``, ``take_free``) puts the address in a network namespace
    of the pod's own, each DEL (``free``) deletes it, and a granted release
    takes the address out of any namespace still holding it."""

    def __init__(self, kube: Kube, netns: PodNetns | None = None) -> None:
        self.kube = kube
        self.netns = netns
        self.taken_by_grant: list[tuple[str, list[str]]] = []  # (ip, namespaces it was in)
        self.stop = threading.Event()
        self.granted = 0
        self.refused = 0
        self.grants: list[tuple[str, str]] = []  # (ip, node) in the order granted
        self.policies: dict[str | None, tuple[str, float]] = {None: (GRANT, 0.0)}
        self.dead: set[str] = set()
        self.informer: Informer[IpRec] = Informer(
            kube.api, paths.VPC_IPS, "agent-standin", ip_from_obj, self._on_ip
        )
        self.lock = threading.RLock()

    def __enter__(self) -> AgentStandIn:
        self.informer.start(self.stop)
        self.informer.synced.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()

    # --- faults ---
    def set_policy(self, mode: str, *, node: str | None = None, delay: float = 0.0) -> None:
        if mode not in (GRANT, HOLD, REFUSE):
            raise ValueError(f"grant policy {mode!r}: want {GRANT}, {HOLD} or {REFUSE}")
        with self.lock:
            self.policies[node] = (mode, delay)
        if mode != HOLD:
            self._answer_open(node)

    def policy(self, node: str) -> tuple[str, float]:
        with self.lock:
            return self.policies.get(node) or self.policies[None]

    def die(self, node: str) -> None:
        with self.lock:
            self.dead.add(node)

    def restart(self, node: str) -> None:
        with self.lock:
            self.dead.discard(node)
        self._answer_open(node)

    def asked(self, node: str | None = None) -> list[str]:
        """IPs whose release is requested and not answered yet."""
        return sorted(
            r.ip
            for r in self.informer.values()
            if (node is None or r.node == node)
            and r.state == m.IP_STATE_RELEASING
            and not self._answered(r)
        )

    def grant(self, ip: str) -> None:
        """Answer one request now, whatever the node's policy (not when dead)."""
        self._grant(ip, force=True)

    def _answer_open(self, node: str | None) -> None:
        for r in list(self.informer.values()):
            mine = node is None or r.node == node
            if mine and r.state == m.IP_STATE_RELEASING and not self._answered(r):
                self._consider(r)

    # --- the handshake ---
    @staticmethod
    def _answered(rec: IpRec) -> bool:
        return rec.phase == m.IP_PHASE_RELEASED and rec.granted_id == rec.release_id

    @staticmethod
    def _grant_status(rec: IpRec) -> dict[str, Any]:
        """The agent's answer to ``rec``'s open release request."""
        return {
            "phase": m.IP_PHASE_RELEASED,
            "releaseId": rec.release_id or None,
            "podUid": None,
            "podName": None,
            "podNamespace": None,
            "updated": now3339(),
        }

    def _status(self, ip: str, status: dict[str, Any]) -> bool:
        try:
            obj = self.kube.api.patch(paths.vpc_ip(ip) + "/status", {"status": status})
        except KubeError:
            return False
        self.informer.apply(obj)
        return True

    def _on_ip(self, key: str, old: IpRec | None, new: IpRec | None) -> None:
        if new is None or new.state != m.IP_STATE_RELEASING or new.used or self._answered(new):
            return
        self._consider(new)

    def _consider(self, rec: IpRec) -> None:
        mode, delay = self.policy(rec.node)
        if mode == HOLD or rec.node in self.dead:
            return
        threading.Thread(target=self._answer, args=(rec.ip, delay), daemon=True).start()

    def _answer(self, ip: str, delay: float) -> None:
        if delay > 0 and self.stop.wait(delay):
            return
        self._grant(ip, force=False)

    def _grant(self, ip: str, *, force: bool) -> None:
        with self.lock:
            rec = self.informer.get(ip)
            if rec is None or rec.state != m.IP_STATE_RELEASING or rec.used:
                return
            if rec.node in self.dead or self._answered(rec):
                return
            mode, _ = self.policy(rec.node)
            if not force and mode == HOLD:
                return
            if not force and mode == REFUSE:
                phase = rec.phase if rec.phase == m.IP_PHASE_FREE else m.IP_PHASE_FREE
                if self._status(ip, {"phase": phase, "updated": now3339()}):
                    self.refused += 1  # an answer, but not a grant
                return
            if self._status(ip, self._grant_status(rec)):
                self.granted += 1
                self.grants.append((ip, rec.node))
                if self.netns is not None and (taken := self.netns.drop_address(ip)):
                    self.taken_by_grant.append((ip, taken))

    # --- CNI ADD/DEL ---
    def _alive(self, node: str, what: str) -> None:
        if node in self.dead:
            raise AgentDeadError(f"{what} on node {node}, whose agent stand-in is dead")

    def use(self, ip: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        with self.lock:
            rec = self.informer.get(ip)
            self._alive(rec.node if rec else "", f"ADD of {ip}")
            self._status(
                ip,
                {
                    "phase": m.IP_PHASE_IN_USE,
                    "podUid": meta["uid"],
                    "podName": meta["name"],
                    "podNamespace": meta["namespace"],
                    "updated": now3339(),
                },
            )
            if self.netns is not None:
                self.netns.bind(meta["uid"], ip)

    def free(self, ip: str) -> None:
        with self.lock:
            rec = self.informer.get(ip)
            self._alive(rec.node if rec else "", f"DEL of {ip}")
            self._status(
                ip,
                {
                    "phase": m.IP_PHASE_FREE,
                    "podUid": None,
                    "podName": None,
                    "podNamespace": None,
                    "updated": "2000-01-01T00:00:00Z",
                },
            )
            if self.netns is not None:
                self.netns.unbind_ip(ip)
            rec = self.informer.get(ip)
        if rec is not None and rec.state == m.IP_STATE_RELEASING and not self._answered(rec):
            self._consider(rec)

    def take_free(self, node: str, pod: dict[str, Any]) -> str | None:
        """CNI ADD of a dynamic pod: a free Assigned IP of the node, marked in use."""
        with self.lock:
            self._alive(node, "ADD")
            for rec in self.informer.values():
                if (
                    rec.node == node
                    and not rec.claim
                    and rec.state == m.IP_STATE_ASSIGNED
                    and rec.phase in ("", m.IP_PHASE_FREE)
                ):
                    self._status(
                        rec.ip,
                        {
                            "phase": m.IP_PHASE_IN_USE,
                            "podUid": pod["metadata"]["uid"],
                            "podName": pod["metadata"]["name"],
                            "podNamespace": pod["metadata"]["namespace"],
                            "updated": now3339(),
                        },
                    )
                    if self.netns is not None:
                        self.netns.bind(pod["metadata"]["uid"], rec.ip)
                    return rec.ip
        return None

    def static_ready(self, key: str, uid: str, node: str) -> IpRec | None:
        for rec in self.informer.values():
            if (
                rec.claim == key
                and rec.reserved_uid == uid
                and rec.node == node
                and rec.state == m.IP_STATE_ASSIGNED
            ):
                return rec
        return None


def settings_for(emu: EmulatorHandle, kubeconfig: Path, *extra: str):  # type: ignore[no-untyped-def]
    argv = [
        "--clusterid",
        CLUSTER,
        "--kubeconfig",
        str(kubeconfig),
        "--leader-elect",
        "false",
        "--cloud-endpoint",
        emu.endpoint,
        "--cloud-protocol",
        "http",
        "--cloud-region",
        emu.region,
        "--reconcile-interval",
        "5s",
        "--subnet-refresh-interval",
        "2s",
        "--trim-interval",
        "1s",
        "--ip-cooldown",
        "0s",
        "--cloud-task-poll",
        "0.01",
        "--cloud-backoff-base",
        "0.02",
        "--cloud-backoff-max",
        "0.5",
        "--workers",
        "4",
        *extra,
    ]
    env = {"TENCENTCLOUD_SECRET_ID": emu.secret_id, "TENCENTCLOUD_SECRET_KEY": emu.secret_key}
    return load(argv, env)


@contextlib.contextmanager
def ipamd_inprocess(
    emu: EmulatorHandle, kubeconfig: Path, *extra: str, api: KubeApi | None = None
) -> Iterator[App]:
    """ipamd's App in this process (threads), stopped on exit. ``api``: talk to
    the apiserver with these credentials instead of the admin kubeconfig."""
    s = settings_for(emu, kubeconfig, *extra)
    from cloud.adapter import TencentCloud

    app = App(
        s,
        api or KubeApi(load_configuration(str(kubeconfig))),
        lambda hooks: TencentCloud.from_settings(s.cloud, hooks=hooks),
    )
    t = threading.Thread(target=app.run, name="ipamd-app", daemon=True)
    t.start()
    try:
        wait_for("ipamd ready", app.ready.is_set, 60)
        yield app
    finally:
        app.stop.set()
        t.join(15)


def cloud_ips(emu: EmulatorHandle) -> dict[str, str]:
    """secondary IP -> ENI id, for our cluster's ENIs in the emulator."""
    out: dict[str, str] = {}
    for e in emu.state()["enis"]:
        if e["primary"] or e["tags"].get(names.TAG_CLUSTER_ID) != CLUSTER:
            continue
        for ip in e.get("ips") or e.get("private_ips") or []:
            addr = ip.get("address") or ip.get("PrivateIpAddress")
            if not (ip.get("primary") or ip.get("Primary")):
                out[addr] = e["id"] if "id" in e else e["eni_id"]
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]
