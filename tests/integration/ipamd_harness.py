"""Test support for ipamd against the real kube-apiserver and the cloud
emulator: CRD install, a clean slate per test, ipamd in-process or as a real
process, and ``AgentStandIn`` — the node agent's side of the contract in
core/models.py (status writes), which the tests play themselves."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core import models as m
from core import names
from ipamd.app import App
from ipamd.config import load
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, KubeError, load_configuration
from ipamd.kube.informer import Informer
from ipamd.records import IpRec, ip_from_obj
from tests.integration.podnetns import PodNetns
from vpcsim.testing import EmulatorHandle

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
CLUSTER = "cls-test0001"
VPC = "vpc-sim00001"
ZONE3, ZONE4 = "ap-guangzhou-3", "ap-guangzhou-4"
POD_SUBNET3, POD_SUBNET4 = "subnet-sim00033", "subnet-sim00044"
NODE_SUBNET3, NODE_SUBNET4 = "subnet-sim00003", "subnet-sim00004"

#: emulator world: one VPC with node and pod subnets in two zones, plus another VPC
SPEC: dict[str, Any] = {
    "region": "ap-guangzhou",
    "vpcs": [
        {
            "id": VPC,
            "name": "tke-sim",
            "cidr": "10.0.0.0/16",
            "subnets": [
                {"id": NODE_SUBNET3, "name": "node-3", "cidr": "10.0.3.0/24", "zone": ZONE3},
                {"id": NODE_SUBNET4, "name": "node-4", "cidr": "10.0.4.0/24", "zone": ZONE4},
                {"id": POD_SUBNET3, "name": "pod-3", "cidr": "10.0.32.0/20", "zone": ZONE3},
                {"id": "subnet-sim00035", "name": "pod-3b", "cidr": "10.0.64.0/24", "zone": ZONE3},
                {"id": POD_SUBNET4, "name": "pod-4", "cidr": "10.0.48.0/20", "zone": ZONE4},
            ],
            "instances": [
                {"id": "ins-sim00001", "type": "S5.LARGE8", "subnet": "node-3"},
                {"id": "ins-sim00002", "type": "S5.LARGE8", "subnet": "node-4"},
                {"id": "ins-sim00003", "type": "S5.LARGE8", "subnet": "node-3"},
            ],
        },
        {
            "id": "vpc-sim00002",
            "name": "other",
            "cidr": "172.16.0.0/16",
            "subnets": [
                {"id": "subnet-sim00099", "name": "other", "cidr": "172.16.1.0/24", "zone": ZONE3}
            ],
        },
    ],
}
INSTANCE_ZONE = {"ins-sim00001": ZONE3, "ins-sim00002": ZONE4, "ins-sim00003": ZONE3}

T = TypeVar("T")


def wait_for(
    what: str, fn: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.1
) -> T:
    """Poll ``fn`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except KubeError as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def now3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statefulset_owner(pod_name: str) -> dict[str, Any]:
    """The controller reference a StatefulSet's pod ``<set>-<ordinal>`` carries
    (the set need not exist: the test control plane runs no garbage collector)."""
    base = pod_name.rsplit("-", 1)[0]
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": base,
        "uid": f"00000000-0000-4000-8000-{zlib.crc32(base.encode()):012d}",
        "controller": True,
    }


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
        for plural in (paths.VPC_IPS, paths.VPC_ENIS, paths.CLAIMS):
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
        for base in (paths.VPC_IPS, paths.VPC_ENIS, paths.NODES):
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
        data = {names.CM_SUBNET_ID: subnet_ids, names.CM_VPC_ID: vpc, **extra}
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": names.CONFIGMAP_NAME, "namespace": names.CONFIGMAP_NAMESPACE},
            "data": data,
        }
        p = paths.configmap(names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
        try:
            self.api.create(f"/api/v1/namespaces/{names.CONFIGMAP_NAMESPACE}/configmaps", body)
        except KubeError as exc:
            if not exc.conflict:
                raise
            self.api.replace(p, body)

    def add_node(self, name: str, instance_id: str, zone: str | None = None) -> None:
        zone = zone or INSTANCE_ZONE.get(instance_id, ZONE3)
        self.api.create(
            paths.NODES,
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {names.ZONE_LABEL: zone, names.INSTANCE_TYPE_LABEL: "S5.LARGE8"},
                },
                "spec": {"providerID": f"qcloud:///800003/{instance_id}"},
            },
        )

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
        ann = {names.ANNOTATION_NETWORKS: names.NETWORK_ROUTE_ENI, **(annotations or {})}
        if policy is not None:
            ann[names.ANNOTATION_CLAIM_DELETE_POLICY] = policy
        meta: dict[str, Any] = {"name": name, "namespace": ns, "annotations": ann}
        if owner is None and policy is not None:
            owner = statefulset_owner(name)  # static IPs are for StatefulSet pods
        if owner:
            meta["ownerReferences"] = [owner]
        return self.api.create(
            f"/api/v1/namespaces/{ns}/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta,
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            },
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


class IpamdProcess:
    """A real ``tke-eni-ipamd`` process (for kill -9 and leader election)."""

    def __init__(self, emu: EmulatorHandle, kubeconfig: Path, log: Path, *extra: str) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "ipamd.cli",
            "--clusterid",
            CLUSTER,
            "--kubeconfig",
            str(kubeconfig),
            "--cloud-endpoint",
            emu.endpoint,
            "--cloud-protocol",
            "http",
            "--cloud-region",
            emu.region,
            "--metrics-address",
            "127.0.0.1:0",
            "--health-address",
            "127.0.0.1:0",
            "--reconcile-interval",
            "3s",
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
            # leaks from a kill -9 are deleted within the test (default: 10m)
            "--leaked-eni-min-age",
            "1s",
            *extra,
        ]
        self.env = {
            **os.environ,
            "TENCENTCLOUD_SECRET_ID": emu.secret_id,
            "TENCENTCLOUD_SECRET_KEY": emu.secret_key,
            "PYTHONPATH": str(ROOT),
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> IpamdProcess:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=out, cwd=str(ROOT), start_new_session=True
        )
        out.close()
        return self

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


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
