"""The end of a cooldown is reported at once (issue 15): the reporter wakes
when an IP's cooldown (or its floor) ends and reports it ``Free``, so the
scheduler extender, which reads ``VpcIP.status``, counts it usable when the
device plugin does — not at the next full pass (``--report-interval``, 30 s)."""

from __future__ import annotations

import time
from pathlib import Path

from cni.agent.agent import Agent, AgentSettings
from cni.agent.ipsource import EniInfo, MemoryNodeIpSource, NodeIp
from cni.agent.pool import PoolState, next_cooldown_change
from cni.agent.reporter import Reporter
from core.ids import EniId, IPv4
from core.models import IP_PHASE_COOLDOWN, IP_PHASE_FREE

ENI = EniInfo(
    EniId("eni-1"), "02:00:00:00:00:01", "10.0.0.0/24", IPv4("10.0.0.1"), IPv4("10.0.0.2")
)
WAIT = 10.0  # a bound far below the 30 s full pass


class _Net:
    fault: object = None  # the agent sets its fault hook here; nothing else is used


def test_next_cooldown_change_counts_the_floor() -> None:
    state = PoolState(cooldown={"a": 200.0, "b": 150.0}, early_reuse=120.0)
    assert next_cooldown_change(state, 0.0) == 30.0  # b's floor
    assert next_cooldown_change(state, 100.0) == 150.0  # both floors passed: b's end
    assert next_cooldown_change(state, 300.0) is None


def test_a_cooldown_end_is_reported_free_without_any_other_trigger(tmp_path: Path) -> None:
    source = MemoryNodeIpSource()
    source.set_view([ENI], [NodeIp(IPv4("10.0.0.10"), ENI.eni_id)])
    state = PoolState(cooldown={"10.0.0.10": time.time() + 1.0})
    agent = Agent(
        AgentSettings(cooldown=150.0),
        source=source,
        pods=None,
        netops=_Net(),  # type: ignore[arg-type]
        state=state,
        checkpoint_path=str(tmp_path / "checkpoint.json"),
    )
    reporter = Reporter(agent, interval=30.0)
    reporter.run_once(full=True)
    assert source.reported["10.0.0.10"].phase == IP_PHASE_COOLDOWN
    reporter.start()
    try:
        deadline = time.monotonic() + WAIT
        while source.reported["10.0.0.10"].phase != IP_PHASE_FREE:
            assert time.monotonic() < deadline, (
                f"the cooldown ended, but the IP is still reported "
                f"{source.reported['10.0.0.10'].phase} {WAIT:g} s later"
            )
            time.sleep(0.05)
    finally:
        reporter.stop()
