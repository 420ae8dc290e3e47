"""Pytest fixtures for a real local control plane (localcluster.controlplane).

- ``control_plane`` (session): etcd + kube-apiserver only, shared, fast.
- ``control_plane_factory`` (function): ``make(with_scheduler=..., scheduler_config=...,
  kwok_nodes=...)`` starts a private control plane; all are stopped at teardown.

A missing binary or a component that does not become ready FAILS the test
with a message naming the set-up step; component log tails are attached to
the report of a failed test, and the work directory is kept then (removed
otherwise).
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.binaries import BinariesMissingError
from localcluster.controlplane import ControlPlane, ControlPlaneError

_PHASE_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()
#: Work directories of control planes a failed test used: kept for the logs.
_KEEP: set[Path] = set()


def _sigterm_to_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"pytest got signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `timeout 600 pytest ...` and CI cancellation send SIGTERM, which would end
    # pytest without running fixture teardowns and leave kube-apiserver & co
    # running. As a KeyboardInterrupt, pytest unwinds and tears everything down.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)


def start_or_fail(cp: ControlPlane) -> ControlPlane:
    """Start ``cp``; turn a set-up problem into a test failure (never a skip)."""
    try:
        cp.start()
    except BinariesMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    except ControlPlaneError as exc:
        pytest.fail(f"{exc}\n(binaries: hack/setup.sh (step: k8s build))", pytrace=False)
    print(f"control plane {cp.server} ready in {cp.timings.total:.1f}s "
          f"(apiserver {cp.timings.apiserver:.1f}s); kubeconfig {cp.kubeconfig}")
    return cp


def _workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"tke-{prefix}-"))


class ControlPlaneFactory:
    """Starts private control planes for one test; ``close()`` stops them all."""

    def __init__(self) -> None:
        self.started: list[ControlPlane] = []

    def __call__(self, **kwargs: Any) -> ControlPlane:
        cp = ControlPlane(_workdir("cp"), **kwargs)
        self.started.append(cp)
        return start_or_fail(cp)

    def close(self, keep_files: bool) -> None:
        started, self.started = self.started, []
        for cp in started:
            cp.stop()
            if keep_files:
                print(f"control plane files kept in {cp.workdir}")
            else:
                shutil.rmtree(cp.workdir, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_PHASE_KEY, {})[report.when] = report
    if report.failed and report.when in ("setup", "call"):
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        planes: list[ControlPlane] = []
        for value in funcargs.values():
            if isinstance(value, ControlPlane):
                planes.append(value)
            elif isinstance(value, ControlPlaneFactory):
                planes.extend(value.started)
        for cp in planes:
            _KEEP.add(cp.workdir)
            report.sections.append((f"control plane logs ({cp.workdir})", cp.logs()))
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_PHASE_KEY, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A shared etcd + kube-apiserver for the whole session (admin kubeconfig: ``.kubeconfig``)."""
    cp = ControlPlane(_workdir("session-cp"))
    try:
        start_or_fail(cp)
        yield cp
    finally:
        cp.stop()
        if cp.workdir in _KEEP:
            print(f"control plane files kept in {cp.workdir}")
        else:
            shutil.rmtree(cp.workdir, ignore_errors=True)


@pytest.fixture
def control_plane_factory(request: pytest.FixtureRequest) -> Iterator[ControlPlaneFactory]:
    """``make(**ControlPlane kwargs)`` → a started private control plane, stopped at teardown."""
    factory = ControlPlaneFactory()
    try:
        yield factory
    finally:
        factory.close(keep_files=_failed(request))
