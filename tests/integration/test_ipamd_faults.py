"""ipamd under faults, as real processes: leader failover between two
ipamds; kill -9 at random points during pod create/delete cycles with cloud
throttling and failing async tasks injected, then invariants checked against
the emulator's state:

* no IP held by two pods (and no IP in use taken away from its node);
* no leaked IP or ENI (cloud and CRDs agree, both ways);
* every claim's IP is still ours.

Cycles: ``IPAMD_FAULT_CYCLES`` (default 60 for CI; the issue's full run is
``IPAMD_FAULT_CYCLES=500``)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.emulator.testing import EmulatorHandle, run_emulator
from core import models as m
from core import names
from ipamd.kube import paths
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import (
    CLUSTER,
    POD_SUBNET3,
    SPEC,
    AgentStandIn,
    IpamdProcess,
    Kube,
    cloud_ips,
    wait_for,
)

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
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(SPEC) as handle:
        yield handle


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


def violations(kube: Kube, emu: EmulatorHandle) -> list[str]:
    out: list[str] = []
    state = emu.state()
    ours = {
        e["eni_id"]: e
        for e in state["enis"]
        if not e["primary"] and e["tags"].get(names.TAG_CLUSTER_ID) == CLUSTER
    }
    in_cloud = cloud_ips(emu)
    vips = {o["metadata"]["name"]: o for o in kube.vpcips()}
    venis = {o["metadata"]["name"]: o for o in kube.vpcenis()}
    for eni_id in ours:
        if eni_id not in venis:
            out.append(f"leaked ENI {eni_id} (no VpcENI)")
    for eni_id, veni in venis.items():
        phase = (veni.get("status") or {}).get("phase")
        if eni_id not in ours:
            out.append(f"VpcENI {eni_id} without ENI")
        elif (
            phase != m.ENI_PHASE_ATTACHED
            or ours[eni_id]["instance_id"] != veni["spec"]["instanceId"]
        ):
            out.append(
                f"VpcENI {eni_id} is {phase}, cloud: attached to {ours[eni_id]['instance_id']}"
            )
    for ip, eni in in_cloud.items():
        if ip not in vips:
            out.append(f"leaked IP {ip} on {eni} (no VpcIP)")
    for ip, o in vips.items():
        if in_cloud.get(ip) != o["spec"]["eniId"]:
            out.append(f"VpcIP {ip} says {o['spec']['eniId']}, cloud says {in_cloud.get(ip)}")
    seen: dict[str, str] = {}
    for ip, o in vips.items():
        st = o.get("status") or {}
        if st.get("phase") == m.IP_PHASE_IN_USE:
            uid = st.get("podUid", "")
            if uid in seen:
                out.append(f"pod {uid} holds {seen[uid]} and {ip}")
            seen[uid] = ip
    for c in kube.api.get(paths.CLAIMS).get("items", []):
        ip = (c.get("status") or {}).get("ip")
        if ip and (
            ip not in in_cloud
            or (vips.get(ip, {}).get("spec") or {}).get("claim")
            != f"{c['metadata']['namespace']}/{c['metadata']['name']}"
        ):
            out.append(f"claim {c['metadata']['name']}: IP {ip} no longer ours")
    return out


def test_kill9_during_pod_churn_with_cloud_faults(
    kube: Kube, emu: EmulatorHandle, tmp_path: Path
) -> None:
    cycles = int(os.environ.get("IPAMD_FAULT_CYCLES", "60"))
    rng = random.Random(int(os.environ.get("IPAMD_FAULT_SEED", "7")))
    nodes = {"n1": "ins-sim00001", "n3": "ins-sim00003"}
    for n, ins in nodes.items():
        kube.add_node(n, ins)
    proc = IpamdProcess(
        emu, kube.kubeconfig, tmp_path / "ipamd.log", *LEASE_FLAGS, "--identity", "ipamd-fault"
    )
    kills = 0
    in_use: dict[str, str] = {}  # ip -> pod uid (what the "agent" handed out)
    with AgentStandIn(kube) as agent:
        proc.start()
        try:
            for n in nodes:
                wait_for(f"warm pool on {n}", lambda n=n: len(kube.vpcips(n)) >= 5, 90)
            emu.set_faults(throttle_ratio=0.2, task_fail_ratio=0.05)
            for i in range(cycles):
                node = rng.choice(list(nodes))
                static = rng.random() < 0.3
                name = f"web-{rng.randrange(4)}" if static else f"dyn-{i}"
                if static and kube.api.get_or_none(paths.pod("default", name)):
                    static, name = False, f"dyn-{i}"
                pod = kube.add_pod(name, node, policy="Never" if static else None)
                uid = pod["metadata"]["uid"]
                if rng.random() < 0.15:
                    proc.kill9()
                    kills += 1
                    proc.start()
                if static:
                    rec = wait_for(
                        f"cycle {i}: static IP of {name} on {node}",
                        lambda k=f"default/{name}", u=uid, n=node: agent.static_ready(k, u, n),
                        120,
                    )
                    ip = rec.ip
                    agent.use(ip, pod)
                else:
                    ip = wait_for(
                        f"cycle {i}: warm IP on {node}",
                        lambda n=node, p=pod: agent.take_free(n, p),
                        120,
                    )
                assert ip not in in_use, (
                    f"cycle {i}: {ip} handed to {uid} while used by {in_use[ip]}"
                )
                in_use[ip] = uid
                assert ip in cloud_ips(emu), f"cycle {i}: {ip} in use but not in the cloud"
                if rng.random() < 0.1:
                    proc.kill9()
                    kills += 1
                    proc.start()
                kube.delete_pod(name)
                agent.free(ip)
                del in_use[ip]
            emu.clear_faults()
            settle_deadline = time.monotonic() + 120
            while violations(kube, emu) and time.monotonic() < settle_deadline:
                time.sleep(0.5)  # reconcile runs every 3s here
            broken = violations(kube, emu)
            assert not broken, "invariants broken:\n" + "\n".join(broken)
            print(f"{cycles} cycles, {kills} kill -9, agent granted {agent.granted} releases")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- ipamd log tail ---\n{proc.log_tail(60)}") from exc
        finally:
            proc.stop()
