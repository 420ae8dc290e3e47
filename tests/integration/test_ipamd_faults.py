"""ipamd under faults, as real processes: leader failover between two
ipamds; then the churn: static pods moving between nodes and dynamic pods
coming and going, with

* cloud faults (the emulator: throttling, failing async tasks, lost replies, 5xx),
* apiserver faults on ipamd's own traffic (localcluster/faultproxy.py: 500/429,
  writes whose reply is lost or answered 504, timeouts, failed watches and
  Lease updates, latency),
* ipamd kill -9 and leader hand-overs (SIGTERM) in the middle of moves,
* the old node's agent dead during a move (its pod still running), restarted after,
* the agents' grants delayed,

and the invariants of tests/integration/ipamd_churn.py checked after every
step (and the leak checks each time the cluster settles).

``IPAMD_FAULT_CYCLES`` (default 14 for CI, about a minute; by hand
``IPAMD_FAULT_CYCLES=200``), ``IPAMD_FAULT_SEED`` (default 7): a failure
names the seed and the step."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import models as m
from harness.ipamd_process import IpamdProcess
from harness.ipamd_world import POD_SUBNET3
from ipamd.kube import paths
from localcluster.apifaults import FaultPlan
from localcluster.controlplane import ControlPlane
from localcluster.faultproxy import FaultProxy
from tests.integration.ipamd_churn import (
    CLOUD_FAULTS,
    CloudFaultCounter,
    Ledger,
    Running,
    api_fault_rules,
    netns_violations,
    settled_violations,
    step_violations,
    waits_for_old_pod,
)
from tests.integration.ipamd_harness import GRANT, AgentStandIn, Kube, wait_for
from tests.integration.podnetns import PodNetns, require_root, sweep
from vpcsim.testing import EmulatorHandle

LEASE_FLAGS = (
    "--leader-elect-lease-duration",
    "3s",
    "--leader-elect-renew-deadline",
    "2s",
    "--leader-elect-retry-period",
    "0.5s",
)


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    yield k
    k.wipe()


@pytest.fixture
def pod_netns() -> Iterator[PodNetns]:
    """The pods' network namespaces: an interrupted earlier run's leftovers are
    swept first; this run's are deleted at the end, also on failure."""
    if why := require_root():
        pytest.fail(why)
    sweep()
    ns = PodNetns()
    try:
        yield ns
    finally:
        ns.close()
        left = ns.own_leftovers()
        assert not left, f"network namespaces left behind: {left}"


def holder(kube: Kube) -> str:
    obj = kube.api.get_or_none(paths.lease("kube-system", "tke-eni-ipamd"))
    return str(((obj or {}).get("spec") or {}).get("holderIdentity") or "")


def test_leader_failover_between_two_processes(
    kube: Kube, emu: EmulatorHandle, tmp_path: Path
) -> None:
    a = IpamdProcess(
        emu, kube.kubeconfig, tmp_path / "a.log", *LEASE_FLAGS, "--identity", "ipamd-a"
    )
    b = IpamdProcess(
        emu, kube.kubeconfig, tmp_path / "b.log", *LEASE_FLAGS, "--identity", "ipamd-b"
    )
    try:
        a.start()
        wait_for("a leads", lambda: holder(kube) == "ipamd-a", 60)
        b.start()
        kube.add_node("n1", "ins-sim00001")
        wait_for("a serves n1", lambda: len(kube.vpcips("n1")) == 5, 60)
        assert holder(kube) == "ipamd-a" and b.alive()
        a.kill9()
        wait_for("b takes over", lambda: holder(kube) == "ipamd-b", 60)
        kube.add_node("n3", "ins-sim00003")
        wait_for("b serves n3", lambda: len(kube.vpcips("n3")) == 5, 60)
        assert len(kube.vpcips("n1")) == 5  # nothing redone or lost by the failover
        assert (
            len(
                [
                    e
                    for e in emu.state()["enis"]
                    if e["instance_id"] == "ins-sim00001" and not e["primary"]
                ]
            )
            == 1
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- a ---\n{a.log_tail()}\n--- b ---\n{b.log_tail()}"
        ) from exc
    finally:
        a.stop()
        b.stop()


class Churn:
    """One churn run: two ipamd processes behind the fault proxy, the agent
    stand-in, the ledger, the figures."""

    def __init__(
        self,
        kube: Kube,
        emu: EmulatorHandle,
        proxy: FaultProxy,
        agent: AgentStandIn,
        procs: dict[str, IpamdProcess],
        seed: int,
    ) -> None:
        self.kube, self.emu, self.proxy, self.agent, self.procs = kube, emu, proxy, agent, procs
        self.seed = seed
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.dynamic: list[tuple[str, str]] = []  # (pod name, IP)
        self.static: dict[str, tuple[str, str]] = {}  # pod name -> (node, IP)
        self.steps: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.step_checks = 0
        self.netns_checks = 0
        self.settled_checks = 0
        self.serial = 0
        self.cloud = CloudFaultCounter(emu)

    # --- faults on/off ---
    def faults_on(self) -> None:
        self.emu.set_faults(**CLOUD_FAULTS)
        self.proxy.set_rules(*api_fault_rules())

    def faults_off(self) -> None:
        self.emu.clear_faults()
        self.proxy.plan.clear()

    # --- invariants ---
    def check(self, step: str) -> None:
        broken = step_violations(self.kube, self.emu, self.ledger, NODES)
        assert not broken, f"seed {self.seed}, {step}: invariants broken:\n" + "\n".join(broken)
        self.step_checks += 1
        netns = self.agent.netns
        assert netns is not None
        broken = netns_violations(self.ledger, netns)
        assert not broken, (
            f"seed {self.seed}, {step}: invariants broken in the pods' netns:\n"
            + "\n".join(broken)
            + (f"\n(addresses taken out by grants: {self.agent.taken_by_grant})")
        )
        self.netns_checks += 1

    def settle(self, step: str) -> None:
        """Faults off, wait for the cluster to converge, check the leak invariants."""
        self.faults_off()
        deadline = time.monotonic() + 120
        broken = settled_violations(self.kube, self.emu)
        while broken and time.monotonic() < deadline:
            time.sleep(0.5)  # reconcile runs every 3s here
            broken = settled_violations(self.kube, self.emu)
        assert not broken, (
            f"seed {self.seed}, {step}: not settled after 120s without faults:\n"
            + "\n".join(broken)
        )
        self.check(f"{step} (settled)")
        self.settled_checks += 1
        self.faults_on()

    # --- ipamd ---
    def leader(self) -> str:
        return holder(self.kube)

    def revive(self) -> None:
        """Restart every replica that has exited (one that lost its Lease exits by
        design), as the Deployment's ReplicaSet would."""
        for proc in self.procs.values():
            if not proc.alive():
                proc.start()

    def kill9(self, why: str) -> None:
        self.revive()
        ident = self.leader() or self.rng.choice(sorted(self.procs))
        proc = self.procs.get(ident) or self.procs[sorted(self.procs)[0]]
        proc.kill9()
        proc.start()
        self.events[f"kill -9 ({why})"] += 1

    def hand_over(self, why: str) -> None:
        self.revive()  # a hand-over needs a live candidate
        old = self.leader()
        if old not in self.procs:
            self.kill9(why)
            return
        self.procs[old].stop()  # SIGTERM: the Lease is handed over

        def new_leader() -> bool:
            self.revive_others(old)
            return self.leader() not in ("", old)

        wait_for(f"a new leader after {old} stopped", new_leader, 60)
        self.procs[old].start()
        self.events[f"hand-over ({why})"] += 1

    def revive_others(self, stopped: str) -> None:
        for ident, proc in self.procs.items():
            if ident != stopped and not proc.alive():
                proc.start()

    def ipamd_event(self, why: str) -> None:
        if self.rng.random() < 0.5:
            self.kill9(why)
        else:
            self.hand_over(why)

    # --- steps ---
    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def dyn_add(self) -> str:
        node = self.rng.choice(sorted(NODES))
        name = self.name("dyn")
        pod = self.kube.add_pod(name, node, policy=None)
        ip = wait_for(
            f"seed {self.seed}: warm IP on {node} for {name}",
            lambda: self.agent.take_free(node, pod),
            120,
        )
        self.ledger.add(ip, Running(name, pod["metadata"]["uid"], node), f"dyn-add {name}")
        self.dynamic.append((name, ip))
        return f"dyn-add {name} on {node} -> {ip}"

    def dyn_del(self) -> str:
        name, ip = self.dynamic.pop(self.rng.randrange(len(self.dynamic)))
        self.kube.delete_pod(name)
        self.agent.free(ip)
        self.ledger.remove(ip)
        return f"dyn-del {name} ({ip})"

    def static_move(self, *, force_death: bool = False) -> str:
        """Start or move a static pod; ``force_death``: move one that runs, with
        its old node's agent dead (so that a short run covers it too)."""
        name = f"web-{self.rng.randrange(3)}"
        if force_death and self.static:
            name = sorted(self.static)[0]
        key = f"default/{name}"
        dest = self.rng.choice(sorted(NODES))
        old = self.static.pop(name, None)
        if force_death and old is not None:
            dest = next(n for n in sorted(NODES) if n != old[0])
        moving = old is not None and old[0] != dest
        agent_dies = moving and (force_death or self.rng.random() < 0.5)
        bounce = moving and not agent_dies and self.rng.random() < 0.3
        ipamd_mid_move = self.rng.random() < 0.5
        label = f"static {name} {old[0] if old else 'new'} -> {dest}"
        if old is not None:
            if agent_dies:
                self.agent.die(old[0])  # the old pod keeps running: no CNI DEL
                self.events["agent dead mid-move"] += 1
            self.delete_pod(name)
            if not agent_dies:
                self.agent.free(old[1])
                self.ledger.remove(old[1])
        pod = self.kube.add_pod(name, dest)
        uid = pod["metadata"]["uid"]
        self.check(f"{label}: pod created on {dest}")
        if ipamd_mid_move:
            self.ipamd_event("mid-move")
            self.check(f"{label}: after the ipamd event")
        if bounce and old is not None:
            # rescheduled back to the old node while the move is under way
            wait_for(
                f"seed {self.seed}: {label}: the move started",
                lambda: self.move_started(old[1], dest),
                120,
            )
            self.delete_pod(name)
            dest = old[0]
            label += f" -> back to {dest}"
            pod = self.kube.add_pod(name, dest)
            uid = pod["metadata"]["uid"]
            self.events["move bounced back"] += 1
            self.check(f"{label}: pod created back on {dest}")
        if agent_dies and old is not None:
            wait_for(
                f"seed {self.seed}: {label}: ipamd waits for the old pod on {old[0]}",
                lambda: waits_for_old_pod(self.kube, name, uid, old[1]),
                120,
            )
            self.check(f"{label}: ipamd waits, old agent dead")
            self.agent.restart(old[0])
            self.agent.free(old[1])  # the restarted agent's DEL of the gone pod
            self.ledger.remove(old[1])
        rec = wait_for(
            f"seed {self.seed}: {label}: static IP ready on {dest}",
            lambda: self.agent.static_ready(key, uid, dest),
            120,
        )
        assert old is None or rec.ip == old[1], (
            f"seed {self.seed}, {label}: the static IP changed from {old[1]} to {rec.ip}"
        )
        self.agent.use(rec.ip, pod)
        self.ledger.add(rec.ip, Running(name, uid, dest, key), label)
        self.static[name] = (dest, rec.ip)
        return f"{label} ({rec.ip})"

    def delete_pod(self, name: str) -> None:
        self.kube.delete_pod(name)
        path = paths.pod("default", name)
        wait_for(f"{name} deleted", lambda: self.kube.api.get_or_none(path) is None, 30)

    def move_started(self, ip: str, dest: str) -> bool:
        rec = self.agent.informer.get(ip)
        return rec is None or rec.state == m.IP_STATE_RELEASING or rec.node == dest

    def grant_delay(self) -> str:
        node = self.rng.choice(sorted(NODES))
        delay = self.rng.choice((0.0, 0.2, 1.0))
        self.agent.set_policy(GRANT, node=node, delay=delay)
        return f"grant delay {delay}s on {node}"

    def cycle(self, i: int, cycles: int) -> None:
        r = self.rng.random()
        if i >= cycles - 2 and not self.events["agent dead mid-move"]:
            kind, what = "static-move", self.static_move(force_death=True)
        elif r < 0.40:
            kind, what = "static-move", self.static_move()
        elif r < 0.62 or not self.dynamic:
            kind, what = "dyn-add", self.dyn_add()
        elif r < 0.80:
            kind, what = "dyn-del", self.dyn_del()
        elif r < 0.88:
            kind, what = "ipamd-kill", "ipamd kill -9"
            self.kill9("between steps")
        elif r < 0.95:
            kind, what = "hand-over", "leader hand-over"
            self.hand_over("between steps")
        else:
            kind, what = "grant-delay", self.grant_delay()
        self.steps[kind] += 1
        self.check(f"cycle {i}: {what}")

    def figures(self, cycles: int) -> str:
        return (
            f"churn seed {self.seed}: {cycles} cycles; steps {dict(self.steps)}; "
            f"ipamd events {dict(self.events)}; agent grants {self.agent.granted}; "
            f"apiserver faults injected {dict(self.proxy.plan.stats())} "
            f"(of {self.proxy.plan.requests} ipamd requests); "
            f"cloud faults injected {dict(self.cloud.counts)}; "
            f"invariant checks passed: {self.step_checks} after-step checks (3 invariants each), "
            f"{self.netns_checks} netns checks (2 invariants each, read from the kernel; "
            f"netns {dict(self.agent.netns.ops) if self.agent.netns else {}}), "
            f"{self.settled_checks} settled checks (2 more)"
        )


NODES = {"n1": "ins-sim00001", "n3": "ins-sim00003"}


def test_churn_with_cloud_and_apiserver_faults(
    kube: Kube,
    emu: EmulatorHandle,
    control_plane: ControlPlane,
    tmp_path: Path,
    pod_netns: PodNetns,
) -> None:
    cycles = int(os.environ.get("IPAMD_FAULT_CYCLES", "14"))
    seed = int(os.environ.get("IPAMD_FAULT_SEED", "7"))
    settle_every = int(os.environ.get("IPAMD_FAULT_SETTLE_EVERY", "10"))
    for n, ins in NODES.items():
        kube.add_node(n, ins)
    assert control_plane.pki is not None
    proxy = FaultProxy.for_pki(
        control_plane.server, control_plane.pki, tmp_path, plan=FaultPlan(seed=seed)
    ).start()
    kc = proxy.kubeconfig(control_plane.kubeconfig, tmp_path / "ipamd-via-proxy.kubeconfig")
    procs = {
        ident: IpamdProcess(emu, kc, tmp_path / f"{ident}.log", *LEASE_FLAGS, "--identity", ident)
        for ident in ("ipamd-a", "ipamd-b")
    }
    churn: Churn | None = None
    try:
        with AgentStandIn(kube, pod_netns) as agent:
            churn = Churn(kube, emu, proxy, agent, procs, seed)
            for p in procs.values():
                p.start()
            for n in NODES:
                wait_for(f"warm pool on {n}", lambda n=n: len(kube.vpcips(n)) >= 5, 90)
            churn.faults_on()
            for i in range(cycles):
                churn.cycle(i, cycles)
                if (i + 1) % settle_every == 0:
                    churn.settle(f"cycle {i}")
            churn.settle("end")
            print(churn.figures(cycles))
    except AssertionError as exc:
        tails = "\n".join(f"--- {k} ---\n{p.log_tail(60)}" for k, p in procs.items())
        journal = "\n".join(proxy.plan.journal[-30:])
        figures = churn.figures(cycles) if churn else ""
        kept = Path(tempfile.mkdtemp(prefix=f"tke-churn-seed{seed}-"))
        for log in tmp_path.glob("*.log"):
            shutil.copy(log, kept / log.name)
        (kept / "apiserver-faults.txt").write_text("\n".join(proxy.plan.journal) + "\n")
        raise AssertionError(
            f"{exc}\n{figures}\n(ipamd logs and injected faults kept in {kept})\n"
            f"--- last apiserver faults ---\n{journal}\n{tails}"
        ) from exc
    finally:
        for p in procs.values():
            p.stop()
        proxy.stop()
