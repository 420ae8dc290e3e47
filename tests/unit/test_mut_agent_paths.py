"""The agent's pool rules and DEL path, pinned where the mutation run
(docs/mutation.md) found them unguarded.

* a static IP is handed to its claim's new sandbox only while ipamd keeps it
  Assigned on an ENI this node has: one asked back (Releasing, a move under
  way) or on an ENI the node does not know is not;
* a freed dynamic IP cools down for the configured time (also for less than
  a second), and no cooldown entry is made when the cooldown is off; a
  cooldown ends exactly at its time;
* the release handshake reports a change when a request is taken back;
* DEL frees the container's IP at once (no reconcile pass needed), leaves the
  veth to die with the netns, and a DEL of a container the agent does not
  know goes to the configured delegate chain unchanged;
* ADD plumbs into the ENI's own table (resolving the ENI's link when it is not
  known yet), answers in the request's CNI version merged onto a previous
  result, records the pod UID (from the runtime, else from the pod), and a
  failed ADD takes its plumbing and its IP back (no cooldown);
* every ADD that ends, failed or not, clears its in-flight mark (another ADD's
  mark of the same IP stays) and moves the ADD epoch forward, the reconcile
  loop's guards against cleaning up a pod mid-ADD;
* a pod that takes no ENI IP goes to the delegate chain, or is refused with a
  clear error when there is none;
* CNI GC deletes the stale attachment's veth too;
* the checkpoint: a torn last line falls back to the one before (also with
  only two lines), the file is private (0600) and its rename made durable by
  syncing its own directory, ``flush`` leaves one compacted snapshot, the
  writer thread never holds the process up, and a wait for a write that
  cannot finish ends in an error, not a hang."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

import cni.agent.agent as agent_mod
from cni.agent import checkpoint, delegate
from cni.agent.agent import Agent, AgentSettings
from cni.agent.cnitypes import (
    ERR_INVALID_CONFIG,
    VALID_ATTACHMENTS_KEY,
    CniError,
    CniRequest,
    PodAttachment,
)
from cni.agent.dataplane.netops import EniLink
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp, NodeIpView
from cni.agent.pods import PodInfo
from cni.agent.pool import (
    Allocation,
    PoolState,
    choose_static,
    cooling,
    grant_releases,
    host_veth_name,
    release,
)
from core.ids import EniId, IPv4
from core.models import IP_STATE_ASSIGNED, IP_STATE_RELEASING
from tests.model_fakes import MemoryPodSource

ENI = EniInfo(
    EniId("eni-1"), "02:00:00:00:aa:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)
CLAIM = "default/web-0"


def nip(ip: str, state: str = IP_STATE_ASSIGNED, eni: str = "eni-1", **kw: Any) -> NodeIp:
    return NodeIp(IPv4(ip), EniId(eni), state, **kw)


def view(*ips: NodeIp) -> NodeIpView:
    return NodeIpView((ENI,), tuple(ips), 1)


def alloc(ip: str, claim: str = "", container: str = "c1") -> Allocation:
    return Allocation(ip, "eni-1", container, "eth0", "/run/netns/p", "tkeveth1", claim=claim)


# --- pool: static IPs ---------------------------------------------------------------


def test_static_ip_not_handed_out_while_ipamd_asks_it_back() -> None:
    v = view(nip("10.0.0.10", IP_STATE_RELEASING, claim=CLAIM, release_id="r1"))
    assert choose_static(v, PoolState(), CLAIM, "uid-1") == (None, None)


def test_static_ip_not_handed_out_on_an_eni_the_node_does_not_have() -> None:
    v = view(nip("10.0.0.10", eni="eni-elsewhere", claim=CLAIM))
    assert choose_static(v, PoolState(), CLAIM, "uid-1") == (None, None)


def test_static_ip_found_after_other_ips_of_the_node() -> None:
    v = view(
        nip("10.0.0.9"), nip("10.0.0.11", claim="default/web-1"), nip("10.0.0.12", claim=CLAIM)
    )
    got, holder = choose_static(v, PoolState(), CLAIM, "uid-1")
    assert got is not None and got.ip == "10.0.0.12" and holder is None


# --- pool: cooldown ---------------------------------------------------------------------


def test_release_cools_a_dynamic_ip_down_for_the_configured_time() -> None:
    st = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10")})
    assert release(st, "10.0.0.10", 100.0, 0.5) is not None
    assert st.cooldown == {"10.0.0.10": 100.5}
    assert cooling(st, "10.0.0.10", 100.25)


def test_release_without_cooldown_makes_no_entry() -> None:
    st = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10")})
    release(st, "10.0.0.10", 100.0, 0.0)
    assert st.cooldown == {} and st.allocations == {}


def test_cooldown_ends_exactly_at_its_time() -> None:
    st = PoolState(cooldown={"10.0.0.10": 100.0, "10.0.0.11": 100.5})
    assert grant_releases(view(nip("10.0.0.10"), nip("10.0.0.11")), st, 100.0) is True
    assert st.cooldown == {"10.0.0.11": 100.5}
    assert grant_releases(view(nip("10.0.0.10"), nip("10.0.0.11")), st, 100.0) is False


def test_a_request_taken_back_is_a_change() -> None:
    st = PoolState(released={"10.0.0.10"})
    assert grant_releases(view(nip("10.0.0.10")), st, 0.0) is True  # back to Assigned
    assert st.released == set()
    assert grant_releases(view(nip("10.0.0.10")), st, 0.0) is False


# --- agent: DEL -------------------------------------------------------------------------


class Net:
    """The data plane's surface the agent uses: records what it was asked."""

    def __init__(self) -> None:
        self.deleted: list[tuple[str, str, bool]] = []
        self.tables: list[int] = []
        self.fail_add = False

    def links_by_mac(self) -> dict[str, tuple[str, int, int, bool]]:
        return {}

    def ensure_eni(self, eni: EniInfo, links: Any) -> tuple[EniLink | None, list[str]]:
        return EniLink(str(eni.eni_id), "eth1", 3, 2003), []

    def add_pod(self, a: Allocation, table: int) -> PodAttachment:
        self.tables.append(table)
        if self.fail_add:
            raise OSError(errno.EEXIST, "File exists")
        return PodAttachment(a.ip, a.host_veth, "02:00:00:00:00:01", a.ifname, "", a.netns, 1500)

    def del_pod(self, ip: str, host_veth: str, delete_link: bool = False) -> None:
        self.deleted.append((ip, host_veth, delete_link))


def req(
    command: str,
    container: str,
    conf: dict[str, Any] | None = None,
    uid: str | None = "u1",
    prev: dict[str, Any] | None = None,
) -> CniRequest:
    args = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "p"}
    if uid is not None:
        args["K8S_POD_UID"] = uid
    c = dict(conf or {"cniVersion": "1.0.0", "name": "n", "type": "tke-route-eni"})
    if prev is not None:
        c["prevResult"] = prev
    return CniRequest(
        command=command,
        container_id=container,
        netns=f"/run/netns/{container}",
        ifname="eth0",
        args=args,
        path="/opt/cni/bin",
        conf=c,
    )


def make_agent(tmp_path: Path, *, eni_only: bool = True, pods: Any = None) -> tuple[Agent, Net]:
    source = MemoryNodeIpSource()
    source.set_view([ENI], [NodeIp(IPv4("10.0.0.10"), EniId("eni-1"))])
    net = Net()
    a = Agent(
        AgentSettings(eni_only=eni_only, cooldown=30.0),
        source=source,
        pods=pods,
        netops=net,  # type: ignore[arg-type]
        state=PoolState(),
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    a.ready.set()
    return a, net


@pytest.fixture
def agent(tmp_path: Path) -> tuple[Agent, Net]:
    return make_agent(tmp_path)


def test_del_frees_the_ip_at_once_and_leaves_the_veth_to_the_netns(
    agent: tuple[Agent, Net],
) -> None:
    a, net = agent
    result = a.handle(req("ADD", "c1"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"
    veth = a.state.allocations["10.0.0.10"].host_veth
    a.handle(req("DEL", "c1"))
    assert a.state.allocations == {}
    assert net.deleted == [("10.0.0.10", veth, False)]
    assert cooling(a.state, "10.0.0.10", 0.0)  # a dynamic IP cools down
    a.handle(req("DEL", "c1"))  # a repeated DEL is a no-op
    assert len(net.deleted) == 1


def test_del_of_an_unknown_container_goes_to_the_delegates(
    agent: tuple[Agent, Net], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, net = agent
    ran: list[tuple[CniRequest, Any]] = []
    monkeypatch.setattr(agent_mod.delegate, "run", lambda r, d: ran.append((r, d)))
    chain = [{"type": "other-ipam"}]
    conf = {
        "cniVersion": "1.0.0",
        "name": "n",
        "type": "tke-route-eni",
        delegate.DELEGATE_KEY: chain,
    }
    r = req("DEL", "unknown", conf)
    a.handle(r)
    assert ran == [(r, chain)] and net.deleted == []
    a.handle(req("DEL", "unknown"))  # no delegates configured: nothing to do
    assert len(ran) == 1


# --- agent: ADD -------------------------------------------------------------------------


def test_add_resolves_the_eni_link_and_plumbs_into_its_table(agent: tuple[Agent, Net]) -> None:
    a, net = agent
    assert a.eni_links == {}
    a.handle(req("ADD", "c1"))
    assert net.tables == [2003] and a.eni_links["eni-1"].table == 2003


def test_add_answers_in_the_requests_version_merged_onto_the_previous_result(
    agent: tuple[Agent, Net],
) -> None:
    a, _ = agent
    prev = {"cniVersion": "0.4.0", "interfaces": [{"name": "lo0"}], "ips": [], "dns": {}}
    conf = {"cniVersion": "0.4.0", "name": "n", "type": "tke-route-eni"}
    result = a.handle(req("ADD", "c1", conf, prev=prev))
    assert result is not None and result["cniVersion"] == "0.4.0"
    assert result["interfaces"][0]["name"] == "lo0"
    assert result["ips"][0]["version"] == "4" and result["ips"][0]["interface"] == 2


def test_add_records_the_pod_uid_from_the_runtime_or_the_pod(tmp_path: Path) -> None:
    pods = MemoryPodSource()
    pods.add(PodInfo("default", "p", "uid-from-api", {}, ()))
    a, _ = make_agent(tmp_path, pods=pods)
    a.handle(req("ADD", "c1", uid="uid-from-runtime"))
    assert a.state.allocations["10.0.0.10"].pod_uid == "uid-from-runtime"
    a.handle(req("DEL", "c1"))
    a.state.cooldown.clear()
    a.handle(req("ADD", "c2", uid=None))  # an older runtime passes no K8S_POD_UID
    assert a.state.allocations["10.0.0.10"].pod_uid == "uid-from-api"


def test_add_without_any_pod_uid_records_none(tmp_path: Path) -> None:
    a, _ = make_agent(tmp_path)
    a.handle(req("ADD", "c1", uid=None))
    assert a.state.allocations["10.0.0.10"].pod_uid == ""


def test_a_failed_add_takes_its_plumbing_and_ip_back(agent: tuple[Agent, Net]) -> None:
    a, net = agent
    net.fail_add = True
    with pytest.raises(CniError):
        a.handle(req("ADD", "c1"))
    veth = host_veth_name("tke", "default", "p", "c1", "eth0")
    assert net.deleted == [("10.0.0.10", veth, True)]  # the half-made veth goes too
    assert a.state.allocations == {} and a.state.cooldown == {}  # free at once
    assert a.in_flight == {}
    net.fail_add = False
    result = a.handle(req("ADD", "c2"))
    assert result is not None and result["ips"][0]["address"] == "10.0.0.10/32"


def test_every_add_clears_its_in_flight_mark_and_moves_the_epoch(agent: tuple[Agent, Net]) -> None:
    a, net = agent
    epoch = a.add_epoch
    a.handle(req("ADD", "c1"))
    assert a.in_flight == {}
    assert a.add_epoch > epoch and a.add_ended["10.0.0.10"] == a.add_epoch
    first = a.add_epoch
    a.handle(req("DEL", "c1"))
    a.state.cooldown.clear()
    net.fail_add = True
    with pytest.raises(CniError):
        a.handle(req("ADD", "c2"))
    assert a.in_flight == {}
    assert a.add_epoch > first and a.add_ended["10.0.0.10"] == a.add_epoch


def test_an_add_that_ends_leaves_another_adds_mark_of_the_same_ip(
    agent: tuple[Agent, Net],
) -> None:
    a, _ = agent
    a.in_flight["10.0.0.10"] = 1  # another ADD of this IP is still under way
    a.handle(req("ADD", "c1"))
    assert a.in_flight == {"10.0.0.10": 1}


def test_a_pod_without_an_eni_ip_goes_to_the_delegates_or_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, net = make_agent(tmp_path, eni_only=False)  # the pod has no ENI annotation
    with pytest.raises(CniError) as err:
        a.handle(req("ADD", "c1"))
    assert err.value.code == ERR_INVALID_CONFIG
    assert "does not ask for an ENI IP" in err.value.msg and "default/p" in err.value.msg
    assert err.value.details == (
        "annotate the pod, run the agent with --eni-only, or set --delegate-file"
    )
    ran: list[tuple[CniRequest, Any]] = []
    monkeypatch.setattr(agent_mod.delegate, "run", lambda r, d: ran.append((r, d)) or {"ok": 1})
    chain = [{"type": "other-ipam"}]
    r = req("ADD", "c1", {"cniVersion": "1.0.0", "name": "n", delegate.DELEGATE_KEY: chain})
    assert a.handle(r) == {"ok": 1}
    assert ran == [(r, chain)] and a.state.allocations == {} and net.tables == []


def test_cni_gc_deletes_the_stale_attachments_veth(agent: tuple[Agent, Net]) -> None:
    a, net = agent
    a.handle(req("ADD", "c1"))
    veth = a.state.allocations["10.0.0.10"].host_veth
    conf = {"cniVersion": "1.1.0", "name": "n", "type": "tke-route-eni"}
    a.handle(req("GC", "", {**conf, VALID_ATTACHMENTS_KEY: []}))
    assert net.deleted == [("10.0.0.10", veth, True)]
    assert a.state.allocations == {}


# --- checkpoint ---------------------------------------------------------------------------


def test_a_torn_second_line_falls_back_to_the_first(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    good = PoolState(allocations={"10.0.0.10": alloc("10.0.0.10")})
    path.write_bytes(json.dumps(good.to_dict()).encode() + b'\n{"version": 1, "alloc')
    loaded = checkpoint.load_checked(str(path))
    assert not loaded.unreadable and set(loaded.state.allocations) == {"10.0.0.10"}


def test_the_checkpoint_file_is_private_and_its_rename_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    path = tmp_path / "state" / "checkpoint.json"
    cp = checkpoint.Checkpoint(str(path), lambda: PoolState().to_dict())
    cp.flush()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path.parent) in synced, f"the directory was not synced: {synced}"
    monkeypatch.chdir(tmp_path)  # a bare file name: its directory is the current one
    checkpoint.write_atomic("bare.json", b"{}")
    assert synced[-1] == str(tmp_path)


def test_flush_leaves_one_compacted_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.json"
    state = PoolState()
    cp = checkpoint.Checkpoint(str(path), state.to_dict)
    for i in range(3):
        state.cooldown[f"10.0.0.{i}"] = 1.0
        cp.wait(cp.mark())
    assert len(path.read_bytes().splitlines()) > 1  # a log of snapshots
    assert cp._thread is not None and cp._thread.daemon  # never holds the process up
    cp.flush()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1 and set(json.loads(lines[0])["cooldown"]) == {
        "10.0.0.0",
        "10.0.0.1",
        "10.0.0.2",
    }


def test_a_wait_for_a_write_that_cannot_finish_ends_in_an_error(tmp_path: Path) -> None:
    cp = checkpoint.Checkpoint(str(tmp_path / "checkpoint.json"), lambda: PoolState().to_dict())
    with cp._write_lock:  # the disk hangs
        seq = cp.mark()
        with pytest.raises(checkpoint.CheckpointError, match="write timed out"):
            cp.wait(seq, timeout=0.2)


def test_the_log_is_compacted_once_it_would_pass_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snap = PoolState().to_dict()
    size = len(json.dumps(snap, sort_keys=True).encode()) + 1  # one snapshot line

    def lines_after(budget: int, writes: int, name: str) -> int:
        monkeypatch.setattr(checkpoint, "MAX_LOG", budget)
        path = tmp_path / name
        cp = checkpoint.Checkpoint(str(path), lambda: snap)
        for _ in range(writes):
            cp.wait(cp.mark())
        return len(path.read_bytes().splitlines())

    # the first write compacts (1 line), the next ones append while the log fits
    assert lines_after(3 * size, 3, "exact.json") == 3  # exactly at the budget: still appended
    assert lines_after(3 * size - 1, 3, "over.json") == 1  # one byte over: compacted


def test_a_failed_write_is_reported_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = [True]
    real = checkpoint.write_atomic

    def flaky(path: str, data: bytes, mode: int = 0o600) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")
        real(path, data, mode)

    monkeypatch.setattr(checkpoint, "write_atomic", flaky)
    path = tmp_path / "checkpoint.json"
    cp = checkpoint.Checkpoint(str(path), lambda: PoolState().to_dict())
    with pytest.raises(checkpoint.CheckpointError, match="failed to write checkpoint"):
        cp.wait(cp.mark(), timeout=5.0)
    failing[0] = False  # the disk has room again: the writer's retry (after 1 s) gets through
    for _ in range(50):  # bounded: until the error the last failure left is cleared
        try:
            cp.wait(cp.mark(), timeout=5.0)
            break
        except checkpoint.CheckpointError:
            time.sleep(0.1)
    else:
        raise AssertionError("the writer never wrote again after the failure")
    assert path.exists()
