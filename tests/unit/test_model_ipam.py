"""Model-based test of IP safety (issue 11, "breadth"): Hypothesis' stateful
testing drives ipamd and the node agents through random interleavings of pod
create/delete, StatefulSet pods moving nodes, sandbox restarts, ipamd
restarts and leader hand-overs, agent restarts (with a corrupt checkpoint),
failed API writes, lost replies, process deaths in the middle of a write,
cloud throttling, user deletes (``kubectl delete vipc`` / ``vip``), a
ConfigMap that goes missing for a moment, a foreign ENI in our subnet and a
second cluster installed with the same cluster id; after every step it
checks the safety invariants, and after a fault-free ``settle`` step the
convergence ones.

Real (the product logic under test):
* ipamd: ``ipamd.app.App`` as built for production — informers, ClusterState,
  the work queue, NodeController, ClaimController, SubnetController,
  Reconciler, CrdWriter/ObjectWriter/EventRecorder — over the real cloud
  adapter (``cloud.adapter.TencentCloud`` with ipamd's ``LeaderFence`` hooks);
* the cloud: the emulator's real request handler and state machine
  (``vpcsim.api.Api`` over ``World``: signatures, faults,
  idempotency tokens, async tasks);
* the node agent: ``cni.agent.agent.Agent`` (ADD/DEL path), its pool rules,
  its checkpoint file (real fdatasync'd log in a temp dir), its reconcile
  pass (release grants, gc) and its usage reporter; the start order of
  ``cni.agent.cli`` (load checkpoint, reconcile, compact).

Faked, and why:
* the Kubernetes API: ``tests.model_fakes.FakeKube``, an in-memory stand-in
  for ipamd's own ``KubeApi`` wrapper (resourceVersions, 409s, status
  subresources, finalizers), so a step costs microseconds, not an apiserver
  round trip; watches are replaced by relisting every informer at the start
  of each ipamd step (delivery order within a step is not explored);
* the cloud transport: signed requests go to the emulator's handler
  in-process instead of over loopback HTTP (``InProcessTransport``);
* netlink: ``tests.model_fakes.FakeNet`` stands in for ``NetOps`` (host veths,
  rules, routes as dicts; ENI links appear when the emulator attaches the ENI
  to the node's instance). The veth of a pod, and the IP on it, is what
  "the pod has its network" means in the invariants;
* ipamd's worker threads and periodic loop are played in-line, one key at a
  time (no concurrency inside one ipamd); time-based knobs are zero
  (cooldowns, trim interval) and claims never expire;
* the leader election itself is not run: a hand-over is a fresh App built
  from the stored state while the old one may still finish one more pass.

Found by this model and fixed (the checks are strict): after ``kubectl
delete vipc`` of a running StatefulSet pod (which keeps its address as a
dynamic IP),
* an ipamd restart or hand-over forgot that (the released pod UIDs lived in
  memory), made a new claim for the running pod and allocated it a second
  address: the pod ran with one IP while its claim held another;
* a new sandbox of that pod (runtime restart, node reboot) never got an IP:
  the agent still treated the pod as static and waited for a claim that was
  not re-made.

Run: CI runs a short version; ``MODEL_IPAM_EXAMPLES=500 MODEL_IPAM_STEPS=60``
runs a longer one; ``MODEL_IPAM_SKIP=corrupt-checkpoint,other-cluster,...``
switches off triggers (to look for one defect class at a time)."""

from __future__ import annotations

import copy
import itertools
import logging
import os
import shutil
import tempfile
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pyroute2.netlink.exceptions import NetlinkError

import cni.agent.reconcile as agent_reconcile
from cni.agent.checkpoint import CheckpointError
from cni.agent.cnitypes import CniError
from cni.agent.pods import PodInfo
from core import names
from ipamd.kube import paths
from tests.model_fakes import Crash, FakeKube, FakeNet, KubeFaultPlan, MemoryPodSource, Store
from tests.model_world import (
    CLUSTER,
    CONFIGMAP,
    NODES,
    NS,
    OTHER_INSTANCE,
    OTHER_SUBNET,
    OTHER_VPC,
    POD_SUBNET,
    VPC,
    Ipamd,
    NodeAgent,
    Pod,
    cni_request,
    damage,
    make_cloud,
    new_container,
    new_emulator,
    pod_object,
    start_agent,
    stop_agent,
)

log = logging.getLogger(__name__)

EXAMPLES = int(os.environ.get("MODEL_IPAM_EXAMPLES", "150"))
STEPS = int(os.environ.get("MODEL_IPAM_STEPS", "40"))
SKIP = {s.strip() for s in os.environ.get("MODEL_IPAM_SKIP", "").split(",") if s.strip()}
STS_NAMES = ("web-0", "web-1", "web-2")
CLOUD_ACTIONS = (
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "MigratePrivateIpAddress",
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "DeleteNetworkInterface",
    "DescribeNetworkInterfaces",
    "DescribeSubnets",
)
FIGURES: Counter[str] = Counter()
# checkpoints on tmpfs when there is one: the model does thousands of fdatasyncs
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def enabled(trigger: str) -> bool:
    return trigger not in SKIP


class IpamModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        FIGURES["cycles"] += 1
        self.tmp = tempfile.mkdtemp(prefix="model-ipam-", dir=SCRATCH)
        self.emu = new_emulator()
        self.store = Store()
        for node, iid in NODES.items():
            self.store.put(
                "nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": node,
                        "labels": {
                            names.ZONE_LABEL: "ap-guangzhou-3",
                            names.INSTANCE_TYPE_LABEL: "S5.LARGE8",
                        },
                    },
                    "spec": {"providerID": f"qcloud:///ap-guangzhou-3/{iid}"},
                },
            )
        self.store.put("configmaps", copy.deepcopy(CONFIGMAP))
        self.user = FakeKube(self.store)  # kubectl: no faults
        self.ipamd: Ipamd | None = None
        self.old_ipamd: Ipamd | None = None
        self._ipamd_step(self._restart_ipamd)
        self.podsrc = MemoryPodSource()
        self.nets = {n: FakeNet(self.emu, iid) for n, iid in NODES.items()}
        self.agents: dict[str, NodeAgent] = {}
        for n in NODES:
            self.agents[n] = start_agent(
                n, self.store, self.nets[n], self.podsrc, self._ckpt_path(n)
            )
        self.pods: dict[str, Pod] = {}
        self.serial = itertools.count()
        self.foreign: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
        self.cm_missing = False
        # every example starts from a small running cluster: a warm pool on each
        # node, a dynamic pod and a StatefulSet pod with its static IP
        self._create("dyn-a", "n1", "dynamic")
        self._create("web-0", "n2", "sts")
        self.settle()

    def teardown(self) -> None:
        for na in self.agents.values():
            stop_agent(na)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers ---------------------------------------------------------------------
    def _ckpt_path(self, node: str) -> str:
        return os.path.join(self.tmp, node, "checkpoint.json")

    def _restart_ipamd(self) -> None:
        self.ipamd = Ipamd(self.store, self.emu)
        self.ipamd.start()

    def _ipamd_step(self, fn: Any) -> None:
        """Run ``fn``; an injected process death ends this ipamd (the next step
        starts a new one from the stored state, as the Deployment would)."""
        try:
            fn()
        except Crash as exc:
            FIGURES["fault: ipamd killed mid-write"] += 1
            log.info("model: %s", exc)
            self.ipamd = None

    def _live_ipamd(self) -> Ipamd:
        """The running ipamd; a dead one is replaced (the Deployment restarts it;
        an injected death during that start is followed by another start)."""
        while self.ipamd is None:
            FIGURES["ipamd restarts"] += 1
            self._ipamd_step(self._restart_ipamd)
        return self.ipamd

    def _agent_pass(self, node: str, full: bool = True) -> None:
        na = self.agents[node]
        try:
            na.reconciler.run_once()
        except (NetlinkError, OSError, CheckpointError) as exc:  # the loop logs and retries
            log.info("model agent %s reconcile: %s", node, exc)
        try:
            na.reporter.run_once(full=full)
        except (OSError, CheckpointError) as exc:
            log.info("model agent %s report: %s", node, exc)

    def _add(self, p: Pod) -> bool:
        container = new_container()
        try:
            result = self.agents[p.node].agent.handle(cni_request("ADD", p, container))
        except CniError as exc:
            log.info("model: ADD %s on %s: %s", p.name, p.node, exc)
            return False
        assert result is not None
        p.container = container
        p.ip = result["ips"][-1]["address"].split("/")[0]
        self.store.put("pods", pod_object(p))  # the kubelet reports the pod's IP
        return True

    def _del(self, p: Pod, container: str) -> None:
        try:
            self.agents[p.node].agent.handle(cni_request("DEL", p, container))
        except CniError as exc:
            log.info("model: DEL %s: %s", p.name, exc)

    def _netns_gone(self, p: Pod) -> None:
        """The runtime removed the sandbox's netns: its veth goes with it."""
        net = self.nets[p.node]
        for name, v in list(net.links.items()):
            if v.netns == p.netns:
                del net.links[name]
                net._drop_ip(v.ip)

    def _create(self, name: str, node: str, kind: str) -> None:
        ann: dict[str, str] = {}
        owner = "StatefulSet"
        if kind == "sts":
            ann[names.ANNOTATION_CLAIM_DELETE_POLICY] = names.CLAIM_POLICY_NEVER
        elif kind == "sts-never-space":
            ann[names.ANNOTATION_CLAIM_DELETE_POLICY] = "Never "
        elif kind == "deploy-never":
            ann[names.ANNOTATION_CLAIM_DELETE_POLICY] = names.CLAIM_POLICY_NEVER
            owner = "ReplicaSet"
        else:
            owner = "ReplicaSet"
        p = Pod(name, f"uid-{next(self.serial)}", node, kind.startswith("sts"), ann, owner)
        self.pods[name] = p
        self.store.put("pods", pod_object(p))
        owners = tuple(pod_object(p)["metadata"]["ownerReferences"])
        self.podsrc.add(PodInfo(NS, name, p.uid, dict(ann), owners))
        FIGURES[f"pods created ({kind})"] += 1

    def _delete(self, p: Pod) -> None:
        if p.container:
            self._del(p, p.container)
            self._netns_gone(p)
        self.store.remove("pods", NS, p.name)
        self.podsrc.pods.pop((NS, p.name), None)
        del self.pods[p.name]

    # --- pods ------------------------------------------------------------------------
    @rule(
        node=st.sampled_from(sorted(NODES)),
        kind=st.sampled_from(["dynamic", "sts", "sts-never-space", "deploy-never"]),
        data=st.data(),
    )
    def create_pod(self, node: str, kind: str, data: st.DataObject) -> None:
        if kind == "sts-never-space" and not enabled("never-space"):
            kind = "sts"
        if kind == "deploy-never" and not enabled("deploy-never"):
            kind = "dynamic"
        if kind.startswith("sts"):
            free = [n for n in STS_NAMES if n not in self.pods]
            if not free:
                return
            name = data.draw(st.sampled_from(free))
        else:
            name = f"{'app' if kind == 'deploy-never' else 'dyn'}-{next(self.serial)}"
        self._create(name, node, kind)

    @precondition(lambda self: any(not p.running for p in self.pods.values()))
    @rule(data=st.data())
    def kubelet_add(self, data: st.DataObject) -> None:
        p = data.draw(st.sampled_from(sorted(n for n, p in self.pods.items() if not p.running)))
        self._add(self.pods[p])

    @precondition(lambda self: bool(self.pods))
    @rule(data=st.data())
    def delete_pod(self, data: st.DataObject) -> None:
        p = self.pods[data.draw(st.sampled_from(sorted(self.pods)))]
        self._delete(p)
        FIGURES["pods deleted"] += 1

    @precondition(lambda self: any(n in self.pods for n in STS_NAMES))
    @rule(data=st.data(), node=st.sampled_from(sorted(NODES)))
    def move_statefulset_pod(self, data: st.DataObject, node: str) -> None:
        """The StatefulSet pod is deleted and comes back, same name, new UID,
        maybe on another node (its static IP must follow)."""
        name = data.draw(st.sampled_from([n for n in STS_NAMES if n in self.pods]))
        p = self.pods[name]
        never = p.annotations.get(names.ANNOTATION_CLAIM_DELETE_POLICY)
        kind = "sts" if never == names.CLAIM_POLICY_NEVER else "sts-never-space"
        self._delete(p)
        self._create(name, node, kind)
        FIGURES["statefulset moves"] += 1

    @precondition(lambda self: any(p.running for p in self.pods.values()))
    @rule(data=st.data(), del_old=st.booleans())
    def sandbox_restart(self, data: st.DataObject, del_old: bool) -> None:
        """The pod's sandbox died (its netns is gone); kubelet starts a new one
        before (or without) the DEL of the old one."""
        name = data.draw(st.sampled_from(sorted(n for n, p in self.pods.items() if p.running)))
        p = self.pods[name]
        old = p.container
        self._netns_gone(p)
        p.container, p.ip = "", ""
        self.store.put("pods", pod_object(p))
        self._add(p)
        if del_old:
            self._del(p, old)
        FIGURES["sandbox restarts"] += 1

    # --- ipamd -------------------------------------------------------------------------
    @rule()
    def ipamd_tick(self) -> None:
        self._ipamd_step(self._live_ipamd().tick)

    @rule()
    def ipamd_reconcile(self) -> None:
        self._ipamd_step(self._live_ipamd().reconcile)

    @rule(how=st.sampled_from(["plain", "configmap-missing", "describe-subnets-throttled"]))
    def ipamd_restart(self, how: str) -> None:
        if how != "plain" and not enabled(how):
            how = "plain"
        FIGURES[f"ipamd restarts ({how})"] += 1
        if how == "configmap-missing":
            self.store.remove("configmaps", names.CONFIGMAP_NAMESPACE, names.CONFIGMAP_NAME)
            self.cm_missing = True
        if how == "describe-subnets-throttled":
            self.emu.faults.update(
                {"throttle_ratio": 1.0, "actions": ["DescribeSubnets", "DescribeSubnetsEx"]}
            )
        try:
            self._ipamd_step(self._restart_ipamd)
            if self.ipamd is not None:
                self._ipamd_step(self.ipamd.tick)
        finally:
            self.emu.faults.update({"throttle_ratio": 0.0, "actions": []})

    @precondition(lambda self: self.cm_missing)
    @rule()
    def configmap_recreated(self) -> None:
        self.store.put("configmaps", copy.deepcopy(CONFIGMAP))
        self.cm_missing = False

    @rule()
    def leader_handover(self) -> None:
        """A new leader starts from the stored state; the old one may not have
        noticed yet (``stale_leader_pass``)."""
        FIGURES["leader hand-overs"] += 1
        self.old_ipamd = self.ipamd if enabled("stale-leader") else None
        self.ipamd = None
        self._live_ipamd()

    @precondition(lambda self: enabled("stale-leader") and self.old_ipamd is not None)
    @rule()
    def stale_leader_pass(self) -> None:
        """The old leader's workers run once more. By now its Lease has been
        taken (the new leader acquired it only after it expired, later than the
        old one's renew deadline), so its elector no longer says it leads: the
        cloud-write fence sees that."""
        old, self.old_ipamd = self.old_ipamd, None
        assert old is not None
        FIGURES["stale leader passes"] += 1
        old.app.fence.may_write = lambda: False
        self._ipamd_step(old.stale_pass)

    # --- faults --------------------------------------------------------------------------
    @precondition(lambda self: enabled("kube-faults"))
    @rule(
        nth=st.integers(0, 4),
        kind=st.sampled_from(["error", "lost", "crash-before", "crash-after"]),
        where=st.sampled_from(["", "/vpcipclaims/", "/vpcips/", "/vpcenis/"]),
    )
    def kube_write_fault(self, nth: int, kind: str, where: str) -> None:
        """One of ipamd's next API writes (to ``where``) fails / loses its
        reply / kills ipamd; armed now, it fires during a later step."""
        ipamd = self._live_ipamd()
        FIGURES[f"fault: apiserver write {kind}"] += 1
        ipamd.kube.faults = KubeFaultPlan(nth, kind, where)

    @precondition(lambda self: enabled("cloud-faults"))
    @rule(
        action=st.sampled_from(CLOUD_ACTIONS),
        kind=st.sampled_from(["throttle", "lost", "crash-before", "crash-after"]),
        reconcile=st.booleans(),
    )
    def cloud_fault(self, action: str, kind: str, reconcile: bool) -> None:
        """During one ipamd pass, ``action`` is throttled / applied with its
        reply lost / ipamd dies right before or after it."""
        ipamd = self._live_ipamd()
        FIGURES[f"fault: cloud {kind}"] += 1
        if kind == "throttle":
            self.emu.faults.update({"throttle_ratio": 1.0, "actions": [action]})
        elif kind == "lost":
            self.emu.faults.update({"lost_reply_ratio": 1.0, "actions": [action]})
        else:
            ipamd.transport.crash_at = (action, kind.split("-")[1])
        try:
            self._ipamd_step(ipamd.reconcile if reconcile else ipamd.tick)
        finally:
            self.emu.faults.update({"throttle_ratio": 0.0, "lost_reply_ratio": 0.0, "actions": []})
            ipamd.transport.crash_at = None

    @precondition(lambda self: enabled("netlink"))
    @rule(node=st.sampled_from(sorted(NODES)), what=st.sampled_from(["add_pod", "del_pod"]))
    def netlink_fault(self, node: str, what: str) -> None:
        """The agent's next ``what`` fails with a netlink error."""
        FIGURES["fault: netlink"] += 1
        self.nets[node].fail_next.add(what)

    # --- node agents ----------------------------------------------------------------------
    @rule(node=st.sampled_from(sorted(NODES)), full=st.booleans())
    def agent_pass(self, node: str, full: bool) -> None:
        """The agent's reconcile pass and a usage report (changes only, or the
        periodic full pass)."""
        self._agent_pass(node, full)

    @rule(
        node=st.sampled_from(sorted(NODES)),
        checkpoint=st.sampled_from(["intact", "torn", "unreadable"]),
    )
    def agent_restart(self, node: str, checkpoint: str) -> None:
        """The agent restarts; its checkpoint may end in a torn write, or be
        unreadable."""
        if checkpoint == "unreadable" and not enabled("corrupt-checkpoint"):
            checkpoint = "torn"
        FIGURES[f"agent restarts ({checkpoint} checkpoint)"] += 1
        stop_agent(self.agents[node])
        damage(self._ckpt_path(node), checkpoint)
        self.agents[node] = start_agent(
            node, self.store, self.nets[node], self.podsrc, self._ckpt_path(node)
        )

    # --- users and neighbours -----------------------------------------------------------
    @precondition(lambda self: enabled("delete-vipc") and bool(self.store.items("vpcipclaims")))
    @rule(data=st.data())
    def kubectl_delete_vipc(self, data: st.DataObject) -> None:
        keys = sorted(o["metadata"]["name"] for o in self.store.items("vpcipclaims"))
        name = data.draw(st.sampled_from(keys))
        self.user.delete(paths.claim(NS, name))
        FIGURES["kubectl delete vipc"] += 1

    @precondition(lambda self: enabled("delete-vip") and bool(self.store.items("vpcips")))
    @rule(data=st.data())
    def kubectl_delete_vip(self, data: st.DataObject) -> None:
        objs = self.store.items("vpcips")
        claimed = sorted(o["metadata"]["name"] for o in objs if o["spec"].get("claim"))
        used = sorted(p.ip for p in self.pods.values() if p.running)
        pick = data.draw(st.sampled_from([x for x in (claimed, used) if x] or [[]]))
        ips = pick or sorted(o["metadata"]["name"] for o in objs)
        self.user.delete(paths.vpc_ip(data.draw(st.sampled_from(ips))))
        FIGURES["kubectl delete vip"] += 1

    @precondition(lambda self: enabled("foreign-eni") and "foreign" not in self.foreign)
    @rule()
    def foreign_eni_in_our_subnet(self) -> None:
        """Someone else creates an ENI (not tagged for us) in our pod subnet."""
        cloud, _ = make_cloud(self.emu, cluster_id="")
        eni = cloud.create_eni(
            vpc_id=VPC, subnet_id=POD_SUBNET, name="someone-else", secondary_ip_count=2
        )
        self.foreign["foreign"] = (eni.eni_id, None, tuple(sorted(eni.secondary_ips)))
        FIGURES["foreign ENIs"] += 1

    @precondition(lambda self: enabled("other-cluster") and "other-cluster" not in self.foreign)
    @rule()
    def other_cluster_installs(self) -> None:
        """A second cluster installed with the same cluster id, in another VPC."""
        cloud, _ = make_cloud(self.emu, cluster_id=CLUSTER)
        eni = cloud.create_eni(
            vpc_id=OTHER_VPC,
            subnet_id=OTHER_SUBNET,
            name="other-cluster",
            secondary_ip_count=2,
            instance_id=OTHER_INSTANCE,
        )
        cloud.attach_eni(eni.eni_id, OTHER_INSTANCE)
        self.foreign["other-cluster"] = (
            eni.eni_id,
            OTHER_INSTANCE,
            tuple(sorted(eni.secondary_ips)),
        )
        FIGURES["other clusters"] += 1

    # --- settle + convergence checks ----------------------------------------------------
    @rule()
    def settle(self) -> None:
        """No faults for a while: everything must converge."""
        FIGURES["settles"] += 1
        if self.cm_missing:
            self.configmap_recreated()
        self.old_ipamd = None
        if self.ipamd is not None:
            self.ipamd.kube.faults = None
        for net in self.nets.values():
            net.fail_next.clear()
        for _ in range(12):
            ipamd = self._live_ipamd()
            before = self.store.writes
            self._ipamd_step(ipamd.tick)
            self._ipamd_step(self._live_ipamd().reconcile)
            for n in sorted(NODES):
                self._agent_pass(n)
            for p in sorted(self.pods.values(), key=lambda p: p.name):
                if not p.running:
                    self._add(p)
            for n in sorted(NODES):
                self._agent_pass(n)
            self.check_safety()
            if self.store.writes == before and all(p.running for p in self.pods.values()):
                break
        self.check_converged()

    # --- invariants -------------------------------------------------------------------------
    def _cloud_enis(self) -> dict[str, Any]:
        w = self.emu.world
        with w.lock:
            return {e.eni_id: copy.deepcopy(e) for e in w.enis.values()}

    @invariant()
    def check_safety(self) -> None:
        FIGURES["invariant checks"] += 1
        enis = self._cloud_enis()
        where: dict[str, tuple[str, str | None]] = {}
        for e in enis.values():
            for ip in e.ips:
                where[ip.address] = (e.eni_id, e.instance_id)
        seen: dict[str, str] = {}
        for p in sorted(self.pods.values(), key=lambda p: p.name):
            if not p.running:
                continue
            # the pod still has its network: its veth, in its netns, with its IP
            net = self.nets[p.node]
            veths = [v for v in net.links.values() if v.netns == p.netns]
            assert veths, f"pod {p.name} on {p.node} lost its network (its veth was removed)"
            assert veths[0].ip == p.ip, f"pod {p.name}: veth has {veths[0].ip}, pod has {p.ip}"
            # no address on two running pods
            assert p.ip not in seen, f"IP {p.ip} is on two running pods: {seen[p.ip]} and {p.name}"
            seen[p.ip] = p.name
            # the address was not moved away from the running pod
            loc = where.get(p.ip)
            assert loc is not None, f"IP {p.ip} of running pod {p.name} is no longer in the cloud"
            assert loc[1] == NODES[p.node], (
                f"IP {p.ip} of running pod {p.name} on {p.node} ({NODES[p.node]}) is on "
                f"ENI {loc[0]} of {loc[1] or 'no instance'}"
            )
        # foreign resources are never touched
        for what, (eni_id, inst, ips) in self.foreign.items():
            e = enis.get(eni_id)
            assert e is not None, f"{what} ENI {eni_id} was deleted by our ipamd"
            assert e.instance_id == inst, f"{what} ENI {eni_id} was detached by our ipamd"
            have = tuple(sorted(i.address for i in e.ips if not i.primary))
            assert have == ips, f"{what} ENI {eni_id}: IPs {ips} became {have}"
        # every claim's IP is still its own
        claims = self.store.items("vpcipclaims")
        held = Counter((o.get("spec") or {}).get("claim") for o in self.store.items("vpcips"))
        for key, n in held.items():
            assert not key or n == 1, f"claim {key} holds {n} VpcIPs"
        owner: dict[str, str] = {}
        for c in claims:
            ip = (c.get("status") or {}).get("ip")
            key = f"{c['metadata']['namespace']}/{c['metadata']['name']}"
            if not ip or c["metadata"].get("deletionTimestamp"):
                continue
            assert ip not in owner, f"claims {owner[ip]} and {key} both hold {ip}"
            owner[ip] = key
            rec = self.store.get("vpcips", "", ip)
            if rec is not None:
                got = (rec.get("spec") or {}).get("claim") or ""
                assert got == key, f"IP {ip} of claim {key} is recorded as {got or 'dynamic'}"

    def check_converged(self) -> None:
        FIGURES["convergence checks"] += 1
        pending = sorted(p.name for p in self.pods.values() if not p.running)
        assert not pending, f"pods still without an IP after settling: {pending}"
        enis = self._cloud_enis()
        ours = {
            k: e
            for k, e in enis.items()
            if not e.primary and e.vpc_id == VPC and e.tags.get(names.TAG_CLUSTER_ID) == CLUSTER
        }
        eni_recs = {o["metadata"]["name"]: o for o in self.store.items("vpcenis")}
        ip_recs = {o["metadata"]["name"]: o for o in self.store.items("vpcips")}
        assert set(ours) == set(eni_recs), (
            f"ENIs in the cloud {sorted(ours)} vs VpcENIs {sorted(eni_recs)}"
        )
        in_cloud = {ip.address: k for k, e in ours.items() for ip in e.ips if not ip.primary}
        leaked = sorted(set(in_cloud) - set(ip_recs))
        assert not leaked, f"cloud IPs with no VpcIP (leaked): {leaked}"
        for ip, o in ip_recs.items():
            assert in_cloud.get(ip) == o["spec"].get("eniId"), (
                f"VpcIP {ip} says {o['spec'].get('eniId')}, the cloud says {in_cloud.get(ip)}"
            )
        for ip, o in ip_recs.items():
            spec, status = o.get("spec") or {}, o.get("status") or {}
            granted = (
                spec.get("state") == "Releasing"
                and status.get("phase") == "Released"
                and status.get("releaseId") == spec.get("releaseId")
            )
            assert not granted, f"VpcIP {ip}: its release was granted, ipamd never finished it"
        running = {p.ip: p for p in self.pods.values() if p.running}
        for node, na in self.agents.items():
            held = set(na.agent.state.allocations)
            want = {ip for ip, p in running.items() if p.node == node}
            assert held == want, f"agent {node} holds {sorted(held)}, running pods {sorted(want)}"
            veths = {v.ip for v in self.nets[node].links.values()}
            assert veths == want, f"node {node} veths {sorted(veths)}, running pods {sorted(want)}"
        for ip, p in running.items():
            st_ = (ip_recs.get(ip) or {}).get("status") or {}
            # (the uid may be unknown: a pod rebuilt from its links before its use was reported)
            assert st_.get("phase") == "InUse" and st_.get("podUid") in (p.uid, None, ""), (
                f"VpcIP {ip} of running pod {p.name} ({p.uid}) shows "
                f"{st_.get('phase') or 'no status'} {st_.get('podUid') or ''}"
            )
        claims = {
            f"{c['metadata']['namespace']}/{c['metadata']['name']}": c
            for c in self.store.items("vpcipclaims")
        }
        for ip, o in ip_recs.items():
            ck = o["spec"].get("claim")
            if ck:
                c = claims.get(ck)
                assert c is not None, f"VpcIP {ip} held for claim {ck}, which does not exist"
                assert (c.get("status") or {}).get("ip") == ip, (
                    f"claim {ck} has IP {(c.get('status') or {}).get('ip')}, "
                    f"and VpcIP {ip} is held for it too"
                )
        for key, c in claims.items():
            name = key.split("/", 1)[1]
            assert name in STS_NAMES, f"claim {key} for a pod that is not a StatefulSet's"
            p = self.pods.get(name)
            if p is not None and p.running and p.static:
                want_ip = (c.get("status") or {}).get("ip")
                assert p.ip == want_ip, (
                    f"static pod {name} runs with {p.ip}, its claim has {want_ip}"
                )


def test_model_ipam(monkeypatch: pytest.MonkeyPatch) -> None:
    # host sysctls are not part of the model (the agent would set the test host's)
    monkeypatch.setattr(agent_reconcile, "ensure_sysctl", lambda name, value: [])
    FIGURES.clear()
    try:
        run_state_machine_as_test(
            IpamModel,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=os.environ.get("MODEL_IPAM_RANDOM") is None,
                database=None,
                report_multiple_bugs=os.environ.get("MODEL_IPAM_ALL_BUGS") is not None,
            ),
        )
    finally:
        print("model figures:", dict(sorted(FIGURES.items())))
