"""NodeENIConfig (nec) per node, per-node warm targets and quick release,
against the real kube-apiserver and the cloud emulator; ``kubectl get
nec,vipc,vip,veni`` through the real kubectl.

- ipamd creates one nec per node it manages, owned by the Node, with the
  effective targets and their source in its status; the nec goes with the node;
- the warm-target annotations of one node's nec change that node's pool live
  while another node keeps the global --min-prebind/--max-prebind;
- a bad value: a Warning event on the nec naming the problem, the previous
  targets kept (pool and status);
- --enable-quick-release: one trim pass asks back every idle surplus IP
  (down to the max target); without it one IP per trim interval."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.ipamd_world import POD_SUBNET3
from ipamd.app import App
from ipamd.controllers.necctl import nec_path
from ipamd.kube import paths
from ipamd.rules.warm import ANN_MAX_WARM, ANN_MIN_WARM
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import AgentStandIn, Kube, cloud_ips, ipamd_inprocess, wait_for
from tests.integration.test_ipamd_static_ips import start_static
from vpcsim.testing import EmulatorHandle

KUBECTL = Path("/var/cache/tke-vpc-cni/k8s/v1.33.13/bin/kubectl")
TWO_WARM = ("--min-prebind", "2", "--max-prebind", "2")


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    k.set_subnets(POD_SUBNET3)
    k.add_node("n1", "ins-sim00001")
    k.add_node("n3", "ins-sim00003")  # the same zone as n1
    yield k
    k.wipe()


def nec(kube: Kube, node: str) -> dict[str, Any] | None:
    return kube.api.get_or_none(nec_path(node))


def status_is(kube: Kube, node: str, lo: int, hi: int, source: str) -> bool:
    st = (nec(kube, node) or {}).get("status") or {}
    return (st.get("minWarmTarget"), st.get("maxWarmTarget"), st.get("source")) == (lo, hi, source)


def annotate(kube: Kube, node: str, ann: dict[str, str | None]) -> None:
    kube.api.patch(nec_path(node), {"metadata": {"annotations": ann}})


def ips_on(emu: EmulatorHandle, kube: Kube, node: str) -> set[str]:
    enis = {e["metadata"]["name"] for e in kube.vpcenis(node)}
    return {ip for ip, eni in cloud_ips(emu).items() if eni in enis}


def warnings(kube: Kube, node: str) -> list[str]:
    return [
        e["message"]
        for e in kube.events("default", "InvalidWarmTarget")
        if e["involvedObject"]["kind"] == "NodeENIConfig"
        and e["involvedObject"]["name"] == node
        and e["type"] == "Warning"
    ]


def test_nec_per_node_owned_by_the_node_and_gone_with_it(kube: Kube, emu: EmulatorHandle) -> None:
    with ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        for node in ("n1", "n3"):
            wait_for(f"nec {node}", lambda n=node: status_is(kube, n, 2, 2, "global"))
            obj = nec(kube, node)
            assert obj is not None
            uid = kube.api.get(paths.node(node))["metadata"]["uid"]
            (ref,) = obj["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["uid"]) == ("Node", node, uid)
            assert obj["status"]["node"] == node
        kube.delete_node("n3")
        wait_for("nec n3 deleted with its node", lambda: nec(kube, "n3") is None)
        assert nec(kube, "n1") is not None


def test_targets_change_live_on_one_node_only(kube: Kube, emu: EmulatorHandle) -> None:
    # the agent stand-in answers release requests (the trim's handshake)
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        wait_for("2 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 2)
        wait_for("2 warm IPs on n3", lambda: len(ips_on(emu, kube, "n3")) == 2)
        wait_for("nec n1", lambda: nec(kube, "n1") is not None)
        annotate(kube, "n1", {ANN_MIN_WARM: "4", ANN_MAX_WARM: "4"})
        wait_for("n1 status 4/4", lambda: status_is(kube, "n1", 4, 4, "annotation"))
        wait_for("4 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 4)
        assert status_is(kube, "n3", 2, 2, "global")
        assert len(ips_on(emu, kube, "n3")) == 2
        # down again: the surplus is trimmed (trim interval 1s in tests)
        annotate(kube, "n1", {ANN_MIN_WARM: "1", ANN_MAX_WARM: "1"})
        wait_for("n1 status 1/1", lambda: status_is(kube, "n1", 1, 1, "annotation"))
        wait_for("1 warm IP on n1", lambda: len(ips_on(emu, kube, "n1")) == 1, timeout=60)
        # annotations removed: the global targets again
        annotate(kube, "n1", {ANN_MIN_WARM: None, ANN_MAX_WARM: None})
        wait_for("n1 back to global", lambda: status_is(kube, "n1", 2, 2, "global"))
        wait_for("2 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 2)
        assert len(ips_on(emu, kube, "n3")) == 2


@pytest.mark.parametrize(
    ("ann", "words"),
    [
        ({ANN_MIN_WARM: "three"}, f"{ANN_MIN_WARM}='three' is not an integer"),
        ({ANN_MAX_WARM: "-1"}, f"{ANN_MAX_WARM}='-1' is negative"),
        ({ANN_MIN_WARM: "5", ANN_MAX_WARM: "4"}, "min warm target 5 exceeds max warm target 4"),
        ({ANN_MAX_WARM: "100000"}, f"{ANN_MAX_WARM}=100000 is above the node's limit of"),
    ],
)
def test_bad_annotation_warns_and_keeps_previous_targets(
    kube: Kube, emu: EmulatorHandle, ann: dict[str, str], words: str
) -> None:
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        wait_for("nec n1", lambda: nec(kube, "n1") is not None)
        annotate(kube, "n1", {ANN_MIN_WARM: "3", ANN_MAX_WARM: "3"})
        wait_for("3 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 3)
        before = ips_on(emu, kube, "n1")
        annotate(kube, "n1", {ANN_MIN_WARM: None, ANN_MAX_WARM: None} | ann)
        wait_for(
            "a Warning event on nec n1 naming the problem",
            lambda: any(words in msg for msg in warnings(kube, "n1")),
        )
        (msg,) = [x for x in warnings(kube, "n1") if words in x]
        assert "keeping min 3 max 3 (annotation)" in msg, msg
        wait_for(
            "the problem in the nec's status",
            lambda: words in ((nec(kube, "n1") or {}).get("status") or {}).get("message", ""),
        )
        assert status_is(kube, "n1", 3, 3, "annotation")
        assert ips_on(emu, kube, "n1") == before
    # an ipamd (re)started while the bad value is there keeps the targets the
    # status says were in force, not the global ones
    with AgentStandIn(kube), ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM) as app:
        app.queue.add("node:n1")
        wait_for("targets in force again", lambda: "n1" in app.state.warm)
        assert app.state.warm["n1"].targets.max_prebind == 3
        assert status_is(kube, "n1", 3, 3, "annotation")
        assert ips_on(emu, kube, "n1") == before
        # fixed: applied, and the message cleared
        annotate(kube, "n1", {ANN_MIN_WARM: "2", ANN_MAX_WARM: "2"})
        wait_for("n1 status 2/2", lambda: status_is(kube, "n1", 2, 2, "annotation"))
        assert not (nec(kube, "n1") or {})["status"].get("message")


def surplus_pass(app: App, node: str) -> None:
    """Make ``node``'s surplus old enough for a trim now, and run a pass."""
    app.state.surplus_since[node] = -1e18
    app.queue.add("node:" + node)


@pytest.mark.parametrize("quick", [True, False])
def test_quick_release_trims_straight_down_to_max(
    kube: Kube, emu: EmulatorHandle, quick: bool
) -> None:
    """6 warm IPs, one in use by a pod and one marked for a pod, the max
    target lowered to 1: with quick release one pass asks back every idle
    surplus IP; without it one. The used and marked addresses never go."""
    # a long interval: no trim unless the test makes the surplus old (surplus_pass),
    # and after a trim none for an hour
    extra = ("--trim-interval", "1h", *TWO_WARM)
    if quick:
        extra = (*extra, "--enable-quick-release")
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *extra) as app:
        wait_for("nec n1", lambda: nec(kube, "n1") is not None)
        annotate(kube, "n1", {ANN_MIN_WARM: "6", ANN_MAX_WARM: "6"})
        wait_for("6 warm IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 6)
        pod = kube.add_pod("busy", "n1", policy=None)
        used = agent.take_free("n1", pod)
        assert used is not None
        _, static_ip = start_static(kube, agent, "web-0", "n1")
        kube.api.delete(paths.claim("default", "web-0"))  # `kubectl delete vipc`: marked
        wait_for(
            "web-0's address marked, no longer claimed",
            lambda: any(
                o["metadata"]["name"] == static_ip and o["spec"].get("unclaimedPodUid")
                for o in kube.vpcips("n1")
            ),
        )
        agent.free(static_ip)  # its sandbox gone, the pod not
        # 6 idle + the busy pod's + the marked one
        wait_for("8 IPs on n1", lambda: len(ips_on(emu, kube, "n1")) == 8)
        annotate(kube, "n1", {ANN_MIN_WARM: "1", ANN_MAX_WARM: "1"})
        wait_for("n1 status 1/1", lambda: status_is(kube, "n1", 1, 1, "annotation"))
        held = ips_on(emu, kube, "n1")
        idle = held - {used, static_ip}
        # used: the busy pod's IP and the marked one; target: used + 1
        want_left = 2 + 1
        surplus_pass(app, "n1")
        if quick:
            wait_for(
                "n1 trimmed straight down to used + max",
                lambda: len(ips_on(emu, kube, "n1")) == want_left,
                timeout=60,
            )
        else:
            wait_for("one idle IP released", lambda: len(ips_on(emu, kube, "n1")) == len(held) - 1)
            # more passes (the pool is still over target) release nothing within the interval
            for _ in range(3):
                app.queue.add("node:n1")
            wait_for("passes done", lambda: not agent.asked("n1"))
            assert len(ips_on(emu, kube, "n1")) == len(held) - 1
        left = ips_on(emu, kube, "n1")
        assert used in left and static_ip in left, (used, static_ip, left)
        assert len(idle - left) == (len(held) - want_left if quick else 1)


def kubectl(kube: Kube, cache: Path, *args: str) -> str:
    if not KUBECTL.exists():
        pytest.fail(f"{KUBECTL} missing: run hack/setup-debian.sh (Kubernetes binaries)")
    out = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kube.kubeconfig), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


def test_kubectl_get_shows_printer_columns(kube: Kube, emu: EmulatorHandle, tmp_path: Path) -> None:
    with AgentStandIn(kube) as agent, ipamd_inprocess(emu, kube.kubeconfig, *TWO_WARM):
        _, static_ip = start_static(kube, agent, "web-0", "n1")
        wait_for("nec n1 status", lambda: status_is(kube, "n1", 2, 2, "global"))
        eni = kube.vpcenis("n1")[0]["metadata"]["name"]
        out = kubectl(kube, tmp_path, "get", "nec,vipc,vip,veni", "-A")
        blocks = [b.splitlines() for b in out.strip().split("\n\n") if b.strip()]
        want = {
            "nodeeniconfig": ["NODE", "MIN-WARM", "MAX-WARM", "SOURCE", "AGE"],
            "vpcipclaim": ["IP", "SUBNET", "ZONE", "POD", "PHASE", "EXPIRY", "AGE"],
            "vpcip": ["NODE", "ENI", "STATE", "PHASE", "POD", "CLAIM", "AGE"],
            "vpceni": ["NODE", "SUBNET", "PHASE", "MAC", "PRIMARY-IP", "DEVICE", "AGE"],
        }
        seen: dict[str, list[str]] = {}
        for lines in blocks:
            head = lines[0].split()
            # a cluster-scoped row has an empty NAMESPACE cell: find the name by its "/"
            name = next(tok for tok in lines[1].split() if "/" in tok)
            seen[name.split(".")[0]] = head
        assert sorted(seen) == sorted(want), out
        for kind, cols in want.items():
            for col in cols:
                assert col in seen[kind], (kind, col, seen[kind], out)
        assert f"vpcip.networking.tke.cloud.tencent.com/{static_ip}" in out
        assert f"vpceni.networking.tke.cloud.tencent.com/{eni}" in out
        assert "vpcipclaim.networking.tke.cloud.tencent.com/web-0" in out
        (nec_block,) = [lines for lines in blocks if "nodeeniconfig" in lines[1]]
        head = nec_block[0].split()
        row = next(r.split() for r in nec_block[1:] if "/n1 " in r + " ")
        row = row[next(i for i, tok in enumerate(row) if "/" in tok) :]
        cells = dict(zip(head[head.index("NAME") :], row, strict=False))
        assert (cells["NODE"], cells["MIN-WARM"], cells["MAX-WARM"], cells["SOURCE"]) == (
            "n1",
            "2",
            "2",
            "global",
        ), out
        # the short name alone, wide: the nec's message column too
        wide = kubectl(kube, tmp_path, "get", "nec", "n1", "-o", "wide")
        assert wide.splitlines()[0].split()[:6] == [
            "NAME",
            "NODE",
            "MIN-WARM",
            "MAX-WARM",
            "SOURCE",
            "MESSAGE",
        ], wide
