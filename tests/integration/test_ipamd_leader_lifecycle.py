"""ipamd's leader election against the real kube-apiserver (issue 11, item 6):
no two leaders act on the cloud at once.

* a renew that fails once does not make the leader step down before the renew
  deadline; renews that keep failing do, past it;
* a renew that hangs (the apiserver does not answer) is bounded by the renew
  deadline: the leader has stepped down — and refuses cloud writes — before
  another candidate can take the Lease;
* a graceful stop releases the Lease only after the workers stopped (a cloud
  write in flight finishes while the Lease is still held), and a standby
  takes over at once;
* a cloud write while not leading is refused with a clear error and counted.

The leader's Lease traffic goes through a TCP proxy that can reset or
black-hole it (tests/integration/ipamd_recording.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from harness.ipamd_world import POD_SUBNET3
from ipamd import metrics
from ipamd.kube import paths
from ipamd.kube.api import KubeApi, load_configuration
from ipamd.kube.lease import LeaseClient
from ipamd.leader import LeaderElector
from localcluster.controlplane import ControlPlane
from tests.integration.ipamd_harness import Kube, wait_for
from tests.integration.ipamd_recording import GatedCloud, TcpProxy, ipamd_recording
from vpcsim.testing import EmulatorHandle

NS, NAME = "kube-system", "tke-eni-ipamd"


@pytest.fixture
def kube(control_plane: ControlPlane) -> Iterator[Kube]:
    k = Kube(control_plane.kubeconfig)
    k.install_crds()
    k.wipe()
    yield k
    k.wipe()


@pytest.fixture
def proxy(control_plane: ControlPlane) -> Iterator[TcpProxy]:
    url = urlparse(control_plane.server)
    p = TcpProxy((url.hostname or "127.0.0.1", int(url.port or 443)))
    yield p
    p.close()


def api_via(kube: Kube, proxy: TcpProxy | None = None) -> KubeApi:
    cfg = load_configuration(str(kube.kubeconfig))
    if proxy is not None:
        cfg.host = f"https://127.0.0.1:{proxy.port}"
    return KubeApi(cfg)


def holder(kube: Kube) -> str:
    obj = kube.api.get_or_none(paths.lease(NS, NAME))
    return str(((obj or {}).get("spec") or {}).get("holderIdentity") or "")


def renew_time(kube: Kube) -> str:
    obj = kube.api.get_or_none(paths.lease(NS, NAME))
    return str(((obj or {}).get("spec") or {}).get("renewTime") or "")


def fence(elector: LeaderElector) -> bool:
    """What the cloud-call layer asks before a write (``is_leader``); an elector
    without one can only say whether it believes it leads."""
    is_leader = getattr(elector, "is_leader", None)
    return bool(is_leader()) if is_leader is not None else elector.leading.is_set()


class Candidate:
    """A LeaderElector on the real Lease, run in a thread; records its callbacks."""

    def __init__(
        self,
        api: KubeApi,
        ident: str,
        events: list[str],
        *,
        lease_duration: float = 6.0,
        renew_deadline: float = 3.0,
        retry_period: float = 0.25,
    ) -> None:
        self.ident = ident
        self.events = events
        self.fence_at_start: dict[str, bool] = {}
        self.elector = LeaderElector(
            LeaseClient(api, NS, NAME),
            ident,
            lease_duration=lease_duration,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            on_started=lambda: self.events.append(f"{ident} start"),
            on_stopped=lambda: self.events.append(f"{ident} stop"),
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.elector.run, args=(self.stop,), daemon=True)

    def start(self) -> Candidate:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


def test_one_failed_renew_does_not_step_down_but_the_deadline_does(
    kube: Kube, proxy: TcpProxy
) -> None:
    events: list[str] = []
    a = Candidate(api_via(kube, proxy), "a", events).start()
    try:
        wait_for("a leads", lambda: a.elector.leading.is_set() and holder(kube) == "a", 30)
        before = renew_time(kube)
        proxy.mode = "reset"  # the next renew fails (connection reset)
        wait_for("a renew failed", lambda: proxy.rejected >= 1, 30)
        proxy.mode = "pass"
        wait_for("a renewed again", lambda: renew_time(kube) != before, 30)
        assert events == ["a start"], events  # no step-down on a transient failure
        assert fence(a.elector)
        # failures that last past the renew deadline: a steps down (once)
        proxy.mode = "reset"
        wait_for("a steps down", lambda: "a stop" in events, 30)
        assert events == ["a start", "a stop"], events
        assert not fence(a.elector)
        assert proxy.rejected >= 3, "stepped down before retrying up to the renew deadline"
    finally:
        proxy.mode = "pass"
        a.close()


def test_hanging_renew_is_bounded_by_the_renew_deadline(kube: Kube, proxy: TcpProxy) -> None:
    """The apiserver stops answering the leader (black hole): it must have stepped
    down — and its fence must refuse writes — before the standby takes the Lease."""
    events: list[str] = []
    a = Candidate(api_via(kube, proxy), "a", events).start()
    b: Candidate | None = None
    try:
        wait_for("a leads", lambda: holder(kube) == "a", 30)
        b = Candidate(api_via(kube), "b", events)
        fence_when_b_started: list[bool] = []

        def b_started() -> None:
            fence_when_b_started.append(fence(a.elector))
            events.append("b start")

        b.elector.on_started = b_started
        b.start()
        proxy.mode = "hold"
        wait_for("b takes over", lambda: holder(kube) == "b", 60)
        wait_for("b started", lambda: fence_when_b_started, 30)
        assert fence_when_b_started == [False], "a still believed it led when b took over"
        assert "a stop" in events, events
        assert events.index("a stop") < events.index("b start"), events
    finally:
        proxy.mode = "pass"
        a.close()
        if b is not None:
            b.close()


LEASE_FLAGS = (
    "--leader-elect",
    "true",
    "--leader-elect-lease-duration",
    "6s",
    "--leader-elect-renew-deadline",
    "3s",
    "--leader-elect-retry-period",
    "0.25s",
)


def test_graceful_stop_releases_the_lease_after_the_workers_and_a_standby_takes_over(
    kube: Kube, emu: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.set_subnets(POD_SUBNET3)
    gates: list[GatedCloud] = []
    released: list[tuple[str, int]] = []  # (holder, cloud writes in flight at that moment)
    real_release = LeaseClient.release

    after_release: list[str] = []  # the Lease's holder in the apiserver right after

    def release(self: LeaseClient, current: object, holder_: str, **kw: object) -> None:
        released.append((holder_, sum(g.in_flight for g in gates)))
        real_release(self, current, holder_, **kw)  # type: ignore[arg-type]
        after_release.append(holder(kube))

    monkeypatch.setattr(LeaseClient, "release", release)

    def gated(inner: object) -> GatedCloud:
        gates.append(GatedCloud(inner))
        return gates[-1]

    with ipamd_recording(
        emu, kube.kubeconfig, *LEASE_FLAGS, "--identity", "ipamd-a", wrap=gated
    ) as (a, _):
        wait_for("a leads", lambda: holder(kube) == "ipamd-a", 30)
        gate = gates[0]
        gate.armed.set()
        kube.add_node("n1", "ins-sim00001")  # a worker creates n1's ENI: held in flight
        assert gate.entered.wait(60), "no cloud write for n1"
        with ipamd_recording(
            emu, kube.kubeconfig, *LEASE_FLAGS, "--identity", "ipamd-b", wait_ready=False
        ) as (b, _):
            a.stop.set()  # SIGTERM
            # a's elector keeps the Lease while the write is in flight: give it a
            # few retry periods to do the wrong thing, then let the write finish
            threading.Event().wait(2.0)
            assert holder(kube) == "ipamd-a"
            gate.release.set()
            wait_for("b takes over", lambda: holder(kube) == "ipamd-b", 60)
            assert released and released[0][0] == "ipamd-a", released
            assert released[0][1] == 0, f"Lease released with a cloud write in flight: {released}"
            assert after_release and after_release[0] in ("", "ipamd-b"), after_release
            assert gate.done, "the write in flight was abandoned"
            wait_for("b serves n1", lambda: len(kube.vpcips("n1")) == 5, 60)
            assert a.elector is not None and not a.elector.is_leader()
            assert b.leading.is_set()


def steal_lease(kube: Kube, who: str) -> None:
    """Another party writes the Lease (as a new leader would)."""
    from ipamd.kube.lease import micro_time

    obj = kube.api.get(paths.lease(NS, NAME))
    obj["spec"]["holderIdentity"] = who
    obj["spec"]["renewTime"] = micro_time()
    obj["spec"]["leaseDurationSeconds"] = 60
    kube.api.replace(paths.lease(NS, NAME), obj)


def test_cloud_write_after_losing_the_lease_is_refused_and_counted(
    kube: Kube, emu: EmulatorHandle
) -> None:
    kube.set_subnets(POD_SUBNET3)
    with ipamd_recording(emu, kube.kubeconfig, *LEASE_FLAGS, "--identity", "ipamd-a") as (a, _):
        wait_for("a leads", lambda: holder(kube) == "ipamd-a", 30)
        cloud = a.deps.cloud
        assert len(cloud.describe_subnets([POD_SUBNET3])) == 1  # reads are never fenced
        before = (
            metrics.REGISTRY.get_sample_value(
                "tke_ipamd_fenced_cloud_writes_total", {"action": "DeleteNetworkInterface"}
            )
            or 0.0
        )
        steal_lease(kube, "intruder")
        wait_for("a steps down", lambda: a.lost_leadership, 30)
        with pytest.raises(Exception, match="not the leader") as err:
            cloud.delete_eni("eni-00000000")  # type: ignore[arg-type]
        assert type(err.value).__name__ == "NotLeaderError"
        after = metrics.REGISTRY.get_sample_value(
            "tke_ipamd_fenced_cloud_writes_total", {"action": "DeleteNetworkInterface"}
        )
        assert after == before + 1
