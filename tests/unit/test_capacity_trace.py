"""bench.capacity_trace: the log lines it reads and the split of a pod's wait."""

from __future__ import annotations

import datetime as dt

from bench import capacity_trace as t

DP = (
    '2026-12-04T17:15:40.100000000Z {"msg":"ListAndWatch sent update",'
    '"devices":"eni-ip-0..eni-ip-26 (11 healthy)"}\n'
    '2026-12-04T17:15:41.000000000Z {"msg":"ListAndWatch sent update",'
    '"devices":"eni-ip-0..eni-ip-26 (12 healthy)"}\n'
    "2026-12-04T17:15:41.500000000Z something else\n"
)
SCHED = (
    'I1204 17:15:40.500000   19038 schedule_one.go:1044] "Unable to schedule pod; no fit; '
    'waiting" pod="default/roll-1" err="0/4 nodes are available"\n'
    'I1204 17:15:43.000000   19038 schedule_one.go:1044] "Unable to schedule pod; no fit; '
    'waiting" pod="default/roll-1" err="0/4 nodes are available"\n'
    'I1204 17:15:44.000000   19038 schedule_one.go:314] "Successfully bound pod to node" '
    'pod="default/roll-1" node="node-a" evaluatedNodes=4 feasibleNodes=1\n'
)


def at(hms: str) -> float:
    return dt.datetime.fromisoformat(f"2026-12-04T{hms}+00:00").timestamp()


def test_parses_plugin_sends_and_scheduler_attempts() -> None:
    assert t.dp_sends(DP) == [(at("17:15:40.100000"), 11), (at("17:15:41.000000"), 12)]
    attempts = t.scheduler_attempts(SCHED, 2026)["default/roll-1"]
    assert attempts.failed == [at("17:15:40.500000"), at("17:15:43.000000")]
    assert attempts.bound == at("17:15:44.000000")
    assert attempts.node == "node-a"
    assert t.rises([(1.0, 3), (2.0, 2), (3.0, 4), (4.0, 4)]) == [3.0]


def test_splits_a_wait_into_kubelet_and_scheduler_parts() -> None:
    b = t.breakdown(
        [("default/roll-1", at("17:15:39"), at("17:15:42.5"))],
        {"default/roll-1": "node-a"},
        {"node-a": t.dp_sends(DP)},
        t.scheduler_attempts(SCHED, 2026),
    )
    assert [round(x, 2) for x in b.send_to_bound] == [3.0]  # 41.0 → 44.0
    assert [round(x, 2) for x in b.send_to_node] == [1.5]  # 41.0 → 42.5
    assert [round(x, 2) for x in b.node_to_bound] == [1.5]
    assert b.failed_after_node == 1  # refused again at 43.0
    assert [round(x, 2) for x in b.no_attempt_after_node] == [0.5]
    assert any("plugin send → bound" in line for line in b.lines())


def test_rise_to_bound_takes_the_last_rise_after_the_first_refusal() -> None:
    sends = {"node-a": [(at("17:15:30"), 10), (at("17:15:35"), 11), (at("17:15:43.5"), 12)]}
    waits = t.rise_to_bound(sends, t.scheduler_attempts(SCHED, 2026))
    assert [round(x, 2) for x in waits] == [0.5]  # 43.5 → 44.0
    assert t.rise_to_bound(sends, t.scheduler_attempts(SCHED, 2026), ["default/other"]) == []
    # the only rise came before the pod's first refusal: it did not wait for it
    early = {"node-a": [(at("17:15:30"), 10), (at("17:15:35"), 11)]}
    assert t.rise_to_bound(early, t.scheduler_attempts(SCHED, 2026)) == []
