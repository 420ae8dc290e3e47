"""The node agent's device-plugin capacity feed: the pure tally rule
(table-driven), the file's text, the atomic write-if-changed, the publisher
over an in-memory IP source, and the settings."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from cni.agent import capacity as cap
from cni.agent import config
from cni.agent.agent import Agent, AgentSettings
from cni.agent.capacity_file import CapacityFilePublisher, pool_reader, write_atomic_if_changed
from cni.agent.ipsource import EniInfo, IpUsage, MemoryNodeIpSource, NodeIp, NodeIpView
from cni.agent.pool import Allocation, PoolState
from cni.agent.reporter import Reporter
from core.capacityfile import parse_capacity_file
from core.ids import EniId, IPv4
from core.models import (
    IP_STATE_ASSIGNED,
    IP_STATE_RELEASING,
    SUBNET_ACTIVE,
    SUBNET_DRAINING,
    SUBNET_INVALID,
    SubnetStatus,
)
from core.usable import IpTally, healthy_devices

ZONE = "ap-guangzhou-3"
OTHER = "ap-guangzhou-4"


def eni(n: int, zone: str = ZONE, cidr: str = "10.0.1.0/24") -> EniInfo:
    return EniInfo(
        eni_id=EniId(f"eni-{n:04d}"),
        mac=f"02:00:00:00:00:{n:02x}",
        subnet_cidr=cidr,
        gateway=IPv4("10.0.1.1"),
        primary_ip=IPv4(f"10.0.1.{100 + n}"),
        zone=zone,
    )


def ips(n: int, eni_n: int = 1, state: str = IP_STATE_ASSIGNED, start: int = 10) -> list[NodeIp]:
    return [
        NodeIp(IPv4(f"10.0.{eni_n}.{start + i}"), EniId(f"eni-{eni_n:04d}"), state)
        for i in range(n)
    ]


def subnet(
    zone: str = ZONE, available: int = 0, state: str = SUBNET_ACTIVE, cidr: str = "10.0.1.0/24"
) -> SubnetStatus:
    return SubnetStatus(
        subnet_id=f"subnet-{zone[-1]}{available}{state[:1]}",
        zone=zone,
        cidr=cidr,
        available=available,
        total=253,
        state=state,
    )


def view(enis: list[EniInfo], node_ips: list[NodeIp]) -> NodeIpView:
    return NodeIpView(tuple(enis), tuple(node_ips), 1)


CASES: list[tuple[str, NodeIpView, list[SubnetStatus] | None, tuple[bool, int, int], str]] = [
    # id, view, subnet statuses, (can grow, warm, leaving), reason
    ("nothing at all", view([], []), None, (False, 0, 0), cap.REASON_NO_ENI),
    (
        "IPs but no attached ENI (ipamd gave nothing usable)",
        view([], ips(3)),
        [subnet(available=50)],
        (False, 0, 0),
        cap.REASON_NO_ENI,
    ),
    (
        "no subnet in the zone: no ENI",
        view([], []),
        [subnet(OTHER, 50)],
        (False, 0, 0),
        cap.REASON_NO_ENI,
    ),
    (
        "ENI, no status (file source / ipamd not yet published)",
        view([eni(1)], ips(5)),
        None,
        (False, 5, 0),
        cap.REASON_NO_STATUS,
    ),
    (
        "zone subnet has free IPs",
        view([eni(1)], ips(5)),
        [subnet(available=1)],
        (True, 5, 0),
        cap.REASON_FREE,
    ),
    (
        "zone subnet exhausted",
        view([eni(1)], ips(5)),
        [subnet(available=0)],
        (False, 5, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "free IPs only in another zone",
        view([eni(1)], ips(4)),
        [subnet(available=0), subnet(OTHER, 200, cidr="10.0.9.0/24")],
        (False, 4, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "free IPs only in a Draining subnet of the zone",
        view([eni(1)], ips(4)),
        [subnet(available=0), subnet(available=90, state=SUBNET_DRAINING, cidr="10.0.2.0/24")],
        (False, 4, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "an Invalid subnet with 'free' IPs does not count",
        view([eni(1)], ips(2)),
        [subnet(available=90, state=SUBNET_INVALID)],
        (False, 2, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "a second Active subnet of the zone still has room",
        view([eni(1)], ips(2)),
        [subnet(available=0), subnet(available=7, cidr="10.0.2.0/24")],
        (True, 2, 0),
        cap.REASON_FREE,
    ),
    (
        "status lists no subnet of the zone at all",
        view([eni(1)], ips(3)),
        [],
        (False, 3, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "Releasing IPs are not held",
        view([eni(1)], ips(3) + ips(2, state=IP_STATE_RELEASING, start=50)),
        [subnet(available=0)],
        (False, 3, 2),
        cap.REASON_EXHAUSTED,
    ),
    (
        "IPs of an ENI that is not attached are not held",
        view([eni(1)], ips(3) + ips(4, eni_n=2)),
        [subnet(available=0)],
        (False, 3, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "two ENIs: IPs of both",
        view([eni(1), eni(2)], ips(3) + ips(4, eni_n=2)),
        [subnet(available=0)],
        (False, 7, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "exhausted with no IP held yet",
        view([eni(1)], []),
        [subnet(available=0)],
        (False, 0, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "ENI without zone: zone found by its subnet CIDR (exhausted)",
        view([eni(1, zone="")], ips(6)),
        [subnet(available=0), subnet(OTHER, 100, cidr="10.0.9.0/24")],
        (False, 6, 0),
        cap.REASON_EXHAUSTED,
    ),
    (
        "ENI without zone: zone found by its subnet CIDR (free)",
        view([eni(1, zone="")], ips(6)),
        [subnet(available=3)],
        (True, 6, 0),
        cap.REASON_FREE,
    ),
    (
        "zone unknown: never read as exhausted",
        view([eni(1, zone="", cidr="10.7.0.0/24")], ips(6)),
        [subnet(available=0)],
        (False, 6, 0),
        cap.REASON_ZONE_UNKNOWN,
    ),
]


@pytest.mark.parametrize(
    ("the_view", "subnets", "want", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_tally_rule(
    the_view: NodeIpView,
    subnets: list[SubnetStatus] | None,
    want: tuple[bool, int, int],
    reason: str,
) -> None:
    verdict = cap.tally(the_view, PoolState(), subnets, NOW)
    t = verdict.tally
    assert ((t.can_grow, t.warm, t.leaving), verdict.reason) == (want, reason)
    assert (t.in_use, t.cooling, t.reserved) == (0, 0, 0)


NOW = 1_000_000.0


def test_tally_classes_in_use_cooling_reserved_granted_and_the_floor() -> None:
    node_ips = ips(9)
    claimed = NodeIp(IPv4("10.0.1.50"), EniId("eni-0001"), claim="default/web-0")
    state = PoolState(early_reuse=20.0)  # --cooldown 30, --cooldown-floor 10
    for n, i in enumerate(node_ips[:3]):
        state.allocations[i.ip] = Allocation(i.ip, i.eni_id, f"c{n}", "eth0", "", f"tke{n}")
    state.cooldown[node_ips[3].ip] = NOW + 25  # rested 5 s of 30: cooling
    state.cooldown[node_ips[4].ip] = NOW + 15  # rested 15 s: past the floor, reusable
    state.cooldown[node_ips[5].ip] = NOW - 1  # over
    state.released.add(node_ips[6].ip)  # granted back to ipamd
    verdict = cap.tally(view([eni(1)], [*node_ips, claimed]), state, [subnet(available=0)], NOW)
    assert verdict.tally == IpTally(
        in_use=3, warm=4, cooling=1, reserved=1, leaving=1, can_grow=False
    )
    # the tally changes by itself when the first rest ends: the floor of .3 (NOW + 5)
    assert verdict.next_change == NOW + 5
    # and what the device plugin makes of it (S5.LARGE8: 27)
    assert healthy_devices(verdict.tally, 27) == 3 + 4


@pytest.mark.parametrize(
    ("grow", "reason"),
    [(True, cap.REASON_FREE), (False, cap.REASON_NO_ENI), (False, cap.REASON_EXHAUSTED)],
)
def test_rendered_file_is_what_the_device_plugin_parses(grow: bool, reason: str) -> None:
    t = IpTally(in_use=2, warm=5, cooling=1, reserved=1, leaving=0, can_grow=grow)
    text = cap.render(cap.CapacityVerdict(t, reason, (ZONE,)))
    parsed = parse_capacity_file(text)
    assert parsed.tally == t
    assert parsed.usable_ips is None  # the operator's key: never written by the agent
    assert parsed.max_pods is None and parsed.unavailable_enis is None  # never touched
    assert reason in text


def test_write_atomic_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "eni-ip-capacity"  # the directory is created
    assert write_atomic_if_changed(str(path), "usable_ips = 1\n") is True
    inode = path.stat().st_ino
    assert write_atomic_if_changed(str(path), "usable_ips = 1\n") is False  # unchanged: no write
    assert path.stat().st_ino == inode
    assert write_atomic_if_changed(str(path), "usable_ips = 2\n") is True
    assert path.read_text() == "usable_ips = 2\n"
    assert path.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert sorted(os.listdir(path.parent)) == ["eni-ip-capacity"]  # no temp file left


def test_publisher_follows_the_view_the_status_and_the_pool(tmp_path: Path) -> None:
    path = tmp_path / "eni-ip-capacity"
    source = MemoryNodeIpSource()
    statuses: list[SubnetStatus] | None = None
    pub = CapacityFilePublisher(str(path), source, lambda: statuses)
    state = PoolState()
    pub.pool = lambda: state

    def tally() -> IpTally | None:
        return parse_capacity_file(path.read_text()).tally

    pub.start()
    try:
        assert tally() == IpTally()  # no ENI yet
        source.set_view([eni(1)], ips(5))
        # the follower thread wakes on the view change; update() makes the check deterministic
        assert pub.update().tally == IpTally(warm=5) and tally() == IpTally(warm=5)
        gauge = "tke_eni_agent_device_plugin_usable_ips"
        assert pub.metrics.registry.get_sample_value(gauge) == 5  # warm
        statuses = [subnet(available=3)]
        pub.update()  # what the status watch's on_change (poke) leads to
        assert tally() == IpTally(warm=5, can_grow=True)
        writes = pub.writes
        pub.update()
        assert pub.writes == writes  # same content: not rewritten
        first = ips(5)[0]
        state.allocations[first.ip] = Allocation(first.ip, first.eni_id, "c", "eth0", "", "tke0")
        pub.update()  # what an ADD's poke leads to
        assert tally() == IpTally(in_use=1, warm=4, can_grow=True)
        path.unlink()  # someone removed it: the next update restores it
        pub.update()
        assert tally() == IpTally(in_use=1, warm=4, can_grow=True)
    finally:
        pub.stop()


def test_config_flag_env_and_defaults() -> None:
    base = ["--ip-source", "file", "--ip-source-file", "/x.json", "--pod-source", "none"]
    cfg = config.parse(base, {})
    assert cfg.device_plugin_capacity_file == ""  # off by default
    assert cfg.subnet_status_ref == ("kube-system", "tke-eni-ipamd-status")
    cfg = config.parse(base, {"TKE_ENI_AGENT_DEVICE_PLUGIN_CAPACITY_FILE": "/run/a/cap"})
    assert cfg.device_plugin_capacity_file == "/run/a/cap"
    cfg = config.parse(
        [*base, "--device-plugin-capacity-file", "/run/b/cap"],
        {"TKE_ENI_AGENT_DEVICE_PLUGIN_CAPACITY_FILE": "/run/a/cap"},
    )
    assert cfg.device_plugin_capacity_file == "/run/b/cap"  # flag > env
    cfg = config.parse(base, {"TKE_ENI_AGENT_SUBNET_STATUS_CONFIGMAP": "ns1/st"})
    assert cfg.subnet_status_ref == ("ns1", "st")
    for bad in ("no-slash", "/name", "ns/", "a/b/c"):
        with pytest.raises(SystemExit):
            config.parse([*base, "--subnet-status-configmap", bad], {})


def test_tally_counts_an_ip_warm_only_once_the_api_holds_it_usable() -> None:
    """Issue 15: the scheduler extender reads the phases the API holds; an IP
    the agent counts warm keeps the class the API's phase gives it until the
    agent's report lands (a rise waits for the API), while every class the
    agent counts occupied wins at once (a fall never waits)."""
    node_ips = ips(8)
    state = PoolState()
    in_use = node_ips[5]
    state.allocations[in_use.ip] = Allocation(in_use.ip, in_use.eni_id, "c", "eth0", "", "tke0")
    state.cooldown[node_ips[6].ip] = NOW + 25
    held: dict[str, str] = {
        node_ips[0].ip: "Cooldown",  # the cooldown ended here, not yet reported
        node_ips[1].ip: "InUse",  # freed with no cooldown, not yet reported
        node_ips[2].ip: "Released",  # a withdrawn release request, not yet reported
        node_ips[3].ip: "Free",
        # node_ips[4]: no status yet (a new IP): the extender counts it warm
        in_use.ip: "Free",  # just taken by an ADD: in use in the file at once
        node_ips[6].ip: "Free",  # a DEL started its cooldown: cooling at once
        node_ips[7].ip: "Bogus",  # a phase nobody knows: leaving, as for the extender
    }
    the_view = view([eni(1)], node_ips)
    gated = cap.tally(the_view, state, None, NOW, held)
    assert gated.tally == IpTally(in_use=2, warm=2, cooling=2, leaving=2)
    assert gated.behind == 4
    plain = cap.tally(the_view, state, None, NOW)  # a source that cannot tell
    assert plain.tally == IpTally(in_use=1, warm=6, cooling=1) and plain.behind == 0
    for limit in (None, 7, 27):
        # the file never advertises more than the agent alone would
        assert healthy_devices(gated.tally, limit) <= healthy_devices(plain.tally, limit)
    # the API catches up: the same counts as the agent's own
    caught_up: dict[str, str] = {ip: "Free" for ip in held}
    assert cap.tally(the_view, state, None, NOW, caught_up).tally == plain.tally


class _Net:
    fault: object = None  # the agent sets its fault hook here; nothing else is used


class _FlakyApi(MemoryNodeIpSource):
    """The in-memory source whose status writes fail while ``down``."""

    down = False

    def report(self, usage: Sequence[IpUsage]) -> None:
        if self.down:
            raise OSError("the API cannot be reached")
        super().report(usage)


def test_a_cooldown_end_reaches_the_file_after_the_api_and_a_failed_write_holds_it(
    tmp_path: Path,
) -> None:
    """The publisher and the reporter of one agent: at a cooldown's end the
    file keeps the IP cooling while the status write fails, and shows it warm
    once the write went through (the reporter's ``after_report`` wakes the
    publisher: the in-memory and file sources do not change their view on a
    status write). An ADD lowers the file before any report."""
    source = _FlakyApi()
    node_ips = ips(2)
    source.set_view([eni(1)], node_ips)
    cooling_ip, other = node_ips[0].ip, node_ips[1].ip
    state = PoolState(cooldown={cooling_ip: time.time() + 3600})
    agent = Agent(
        AgentSettings(cooldown=3600.0),
        source=source,
        pods=None,
        netops=_Net(),  # type: ignore[arg-type]
        state=state,
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    path = tmp_path / "eni-ip-capacity"
    pub = CapacityFilePublisher(str(path), source)
    pub.pool = pool_reader(agent.lock, agent.state)
    reporter = Reporter(agent, interval=3600.0)
    pokes: list[int] = []
    reporter.after_report = lambda: pokes.append(1)

    def tally() -> IpTally | None:
        return parse_capacity_file(path.read_text()).tally

    reporter.run_once(full=True)
    assert source.reported[cooling_ip].phase == "Cooldown" and pokes == [1]
    pub.update()
    assert tally() == IpTally(warm=1, cooling=1)

    state.cooldown[cooling_ip] = time.time() - 1  # the cooldown ends ...
    source.down = True  # ... while the API cannot be reached
    with pytest.raises(OSError):
        reporter.run_once()
    assert pokes == [1]  # nothing accepted, no wake-up
    verdict = pub.update()
    assert tally() == IpTally(warm=1, cooling=1) and verdict.behind == 1
    assert pub.metrics.registry.get_sample_value("tke_eni_agent_device_plugin_usable_ips") == 1

    source.down = False  # the retry goes through; then the file rises
    reporter.run_once()
    assert source.reported[cooling_ip].phase == "Free" and pokes == [1, 1]
    assert pub.update().behind == 0 and tally() == IpTally(warm=2)

    # the other direction: an ADD lowers the file at once, before its report
    state.allocations[other] = Allocation(other, node_ips[1].eni_id, "c", "eth0", "", "tke0")
    pub.update()
    assert source.reported[other].phase == "Free"  # not reported yet
    assert tally() == IpTally(in_use=1, warm=1)
