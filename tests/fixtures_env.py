"""The whole local environment for the guide scenarios (localrun; docs/local-run.md).

- ``guide_env``: one ``localrun.environment.Environment`` (emulated VPC, control plane
  with the scheduler wired to the extender, kube-controller-manager and kube-proxy,
  deploy/ applied through the local overlay, three real nodes running every component
  as a pod from the tke-vpc-cni image, the ENI plumber) shared by consecutive tests
  (every tests/e2e/test_guide_*.py module); stopped
  after the last of them (and at session end), asserting that nothing (processes,
  netns) is left behind.
- helpers: ``zone_subnets``, ``configured_subnets``, ``in_subnets``.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from localcluster.binaries import BinariesMissingError
from localcluster.controlplane import ControlPlaneError
from localnode import netns
from localnode.proc import pids_with_arg
from localrun.environment import Environment
from localrun.kube import Kube
from localrun.manifests import ManifestError

#: short: unix socket paths under a node's workdir must stay below 108 bytes
ENV_BASE = Path("/var/lib/tke-e2e")
PREFIX = "tkg"  # netns tkg-node-a, tkg-fabric (apart from the demo's tkd-*)
#: the scenarios need quicker loops than production defaults (bounded waits stay short)
IPAMD_ENV = {"TKE_IPAMD_RECONCILE_INTERVAL": "10s", "TKE_IPAMD_TRIM_INTERVAL": "20s"}


class _SharedEnvironment:
    """One Environment for a run of consecutive guide tests: started by the first test that
    asks for it, stopped right after the last one of the run (``pytest_runtest_teardown``
    below), so the other suites do not share the machine with three idle real nodes."""

    def __init__(self) -> None:
        self.env: Environment | None = None

    def get(self) -> Environment:
        if self.env is not None:
            return self.env
        workdir = ENV_BASE / f"guide-{secrets.token_hex(3)}"
        env = Environment(workdir, prefix=PREFIX, kwok_nodes=1,
                          ipamd_extra_env=dict(IPAMD_ENV),
                          progress=lambda line: print(line, flush=True))
        try:
            env.start()
        except BinariesMissingError as exc:
            pytest.fail(str(exc), pytrace=False)
        except ControlPlaneError as exc:
            pytest.fail(f"{exc}\n(binaries: hack/setup.sh (step: k8s build))", pytrace=False)
        except ManifestError as exc:  # kustomize or a console script missing: names the step
            pytest.fail(str(exc), pytrace=False)
        print("environment up:\n" + env.phases.table())
        self.env = env
        return env

    def close(self) -> None:
        env, self.env = self.env, None
        if env is None:
            return
        problems = env.stop()
        print("stop: " + ", ".join(f"{w} {t:.1f}s" for w, t in env.stop_timings))
        left = pids_with_arg(str(env.workdir))
        stale = [n for n in (f"{PREFIX}-fabric", f"{PREFIX}-cp",
                             *(f"{PREFIX}-{s.name}" for s in env.nodes))
                 if netns.exists(n)]
        if not problems and not left and not stale:
            shutil.rmtree(env.workdir, ignore_errors=True)
        assert not problems and not left and not stale, (
            f"environment clean-up left things behind (kept {env.workdir}): problems "
            f"{problems}, processes {left}, netns {stale}")


_SHARED = _SharedEnvironment()


@pytest.fixture
def guide_env() -> Environment:
    return _SHARED.get()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use the shared environment one after the other (from where the
    first of them is), so it starts once."""
    users = [i for i in items if "guide_env" in getattr(i, "fixturenames", ())]
    if not users:
        return
    first = items.index(users[0])
    others = [i for i in items if "guide_env" not in getattr(i, "fixturenames", ())]
    items[:] = others[:first] + users + others[first:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared environment after the last consecutive test that uses it (a
    failure to clean up is this test's teardown error)."""
    uses = "guide_env" in getattr(item, "fixturenames", ())
    next_uses = nextitem is not None and "guide_env" in getattr(nextitem, "fixturenames", ())
    if uses and not next_uses:
        _SHARED.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Interrupted runs (KeyboardInterrupt, SIGTERM) still stop the environment."""
    try:
        _SHARED.close()
    except AssertionError as exc:
        print(f"\n{exc}")


def configmap_subnets(kube: Kube) -> list[str]:
    cm = kube.get("/api/v1/namespaces/kube-system/configmaps/tke-eni-ipamd")
    assert cm is not None, "ConfigMap kube-system/tke-eni-ipamd missing"
    return [s for s in cm["data"]["TKE_ENI_IPAMD_SUBNET_ID"].split(":") if s]


def zone_subnets(env: Environment, zone: str) -> dict[str, str]:
    """Configured subnets of ``zone``: id -> CIDR (from the emulated cloud)."""
    assert env.emulator is not None
    configured = set(configmap_subnets(env.kube))
    return {s["subnet_id"]: s["cidr"] for s in env.emulator.state()["subnets"]
            if s["zone"] == zone and s["subnet_id"] in configured}


def in_subnets(ip: str, subnets: dict[str, str]) -> str | None:
    """The id of the subnet holding ``ip``, or None."""
    for sid, cidr in subnets.items():
        if ipaddress.ip_address(ip) in ipaddress.ip_network(cidr):
            return sid
    return None


def node_zone(env: Environment, node: str) -> str:
    return env.real[node].spec.zone


def delete_and_wait(env: Environment, path: str, pods_selector: str = "",
                    timeout: float = 120.0) -> None:
    """Delete an object and wait until it and its pods (``pods_selector``) are gone. The
    pods are deleted at once (grace 0): the nginx stand-in ignores SIGTERM, and clean-up
    should not wait out the 30 s default grace period."""
    from localrun.kube import wait_for

    kube = env.kube
    kube.request(path, "DELETE", {"kind": "DeleteOptions", "apiVersion": "v1",
                                  "propagationPolicy": "Background"})
    if pods_selector:
        kube.request(f"/api/v1/namespaces/default/pods?labelSelector={pods_selector}",
                     "DELETE", {"kind": "DeleteOptions", "apiVersion": "v1",
                                "gracePeriodSeconds": 0})
    wait_for(f"{path} deleted", lambda: kube.get(path) is None, timeout)
    if pods_selector:
        wait_for(f"pods {pods_selector} gone", lambda: not kube.pods(selector=pods_selector),
                 timeout)


def pod_ip(pod: dict[str, Any]) -> str:
    return str(pod["status"]["podIP"])
