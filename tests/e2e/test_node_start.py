"""A node that joins a running cluster advertises only what it can serve (issue 17
item 3; docs/cloud.md "Node start to first pod"): the local run with the emulator's
``cloud`` latency profile (an ENI takes a second to exist and 2.5 s to attach, each IP
assignment half a second), one more real node joined, and at the moment it turns
Ready a burst of ENI pods pinned to it - more than ipamd's warm pool holds, so some
wait for a refill. Every pod must run with no ``FailedCreatePodSandBox``: the device
plugin's ``eni-ip`` stays 0 until an IP is usable on the node, and grows only with
usable IPs, so the scheduler never binds a pod the node cannot network yet. Then the
same with the ``cloud-slow`` profile (every figure x3: an ENI takes ~10 s to create and
attach) and a burst of 30, more than the first ENI's 19 IPs: ``eni-ip`` must follow
the ENIs as they attach, not jump to the instance's 95 at the first (that jump gave 11
sandbox failures: the pods past the first ENI's room waited in ADD longer than its
bound for the second ENI).

Its own Environment (prefix ``tnj``, two real nodes for the components), not the
guide's shared one: the joined node would change the capacity the guide tests count.
The figures ``bench.nodestart`` prints are printed here too (not asserted)."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.binaries import BinariesMissingError
from localcluster.controlplane import ControlPlaneError
from localnode import netns
from localnode.proc import pids_with_arg
from localrun.cloudspec import ZONE3
from localrun.environment import Environment
from localrun.joinnode import delete_burst, join_and_burst
from localrun.manifests import ManifestError
from localrun.nodedaemons import NodeSpec

pytestmark = pytest.mark.e2e
PREFIX = "tnj"
BURST = 12  # more than the warm pool's 5: at least two refills while pods wait
JOINED = NodeSpec("join-e2e", ZONE3, "S5.2XLARGE16")


@pytest.fixture
def env() -> Iterator[Environment]:
    workdir = Path("/var/lib/tke-e2e") / f"nodestart-{secrets.token_hex(3)}"
    environment = Environment(workdir, prefix=PREFIX, kwok_nodes=1,
                              nodes=(NodeSpec("node-a", ZONE3), NodeSpec("node-b", ZONE3)),
                              progress=lambda line: print(line, flush=True))
    try:
        environment.start()
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    except ControlPlaneError as exc:
        pytest.fail(f"{exc}\n(binaries: hack/setup.sh (step: k8s build))", pytrace=False)
    except ManifestError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield environment
    finally:
        problems = environment.stop()
        left = pids_with_arg(str(workdir))
        stale = [n for n in (f"{PREFIX}-fabric", f"{PREFIX}-cp", f"{PREFIX}-node-a",
                             f"{PREFIX}-node-b", f"{PREFIX}-{JOINED.name}")
                 if netns.exists(n)]
        if not problems and not left and not stale:
            shutil.rmtree(workdir, ignore_errors=True)
        assert not problems and not left and not stale, (
            f"clean-up left things behind (kept {workdir}): {problems}, {left}, {stale}")


@pytest.mark.parametrize(("profile", "burst"), [("cloud", BURST), ("cloud-slow", 30)])
def test_a_joined_node_runs_a_burst_at_ready_without_sandbox_failures(
        env: Environment, profile: str, burst: int) -> None:
    assert env.emulator is not None
    faults = env.emulator.set_faults(profile=profile)
    assert faults["task_ms"]["AttachNetworkInterface"] > 0
    result = join_and_burst(env, JOINED, burst, timeout=240.0)
    print(f"node Ready {result.ready_s:.1f} s after the join; Ready -> eni-ip > 0 "
          f"{result.eni_ip_s:.2f} s; -> first pod Running {result.first_running_s:.2f} s; "
          f"pod starts {[round(s, 2) for s in result.starts]}; allocatable steps "
          f"{result.allocatable}; cloud calls {result.cloud_calls}")
    assert result.running == burst
    assert result.sandbox_failures == 0, result.why
    # eni-ip first rose to what the first ENI holds (19 secondary IPs), not to the 95
    # of the instance: ipamd adds the second ENI only once pods use the first one's IPs
    first = next(value for _, value in result.allocatable if value > 0)
    assert first <= 19, result.allocatable
    # the profile was in force: the joined node's ENI was created and attached through it
    assert result.cloud_calls.get("AttachNetworkInterface", 0) >= 1
    assert result.cloud_calls.get("AssignPrivateIpAddresses", 0) >= 1
    delete_burst(env, result)
