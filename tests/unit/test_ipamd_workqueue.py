"""ipamd.workqueue: dedup, no concurrent processing of one key, dirty re-queue, backoff."""

from __future__ import annotations

from ipamd.workqueue import WorkQueue


def test_dedup_and_dirty_requeue() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = q.get(0.1)
    assert k == "a"
    q.add("a")  # changed while processing: not handed out twice
    assert q.get(0.1) == "b"
    assert q.get(0.05) is None
    q.done("a")
    assert q.get(0.1) == "a"
    q.done("a")
    q.done("b")
    assert q.get(0.01) is None


def test_retry_backoff_grows_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert q.retry("k") == 0.01
    assert q.retry("k") == 0.02
    assert q.retry("k") == 0.04
    assert q.retry("k") == 0.04
    q.forget("k")
    assert q.retry("k") == 0.01
    assert q.get(1.0) == "k"


def test_add_after_and_shutdown() -> None:
    q = WorkQueue()
    q.add_after("x", 0.02)
    assert q.get(1.0) == "x"
    q.shutdown()
    assert q.get(0.1) is None


def test_a_failed_key_changed_while_processing_waits_for_its_backoff() -> None:
    """A sync that writes (its own watch event marks the key changed) and then fails
    must come back after its backoff, not at once: otherwise a failing node sync
    spins at the apiserver (seen as a livelock under churn, thousands of requests)."""
    q = WorkQueue(base_delay=30.0, max_delay=30.0)
    q.add("node:n1")
    assert q.get(0.1) == "node:n1"
    q.add("node:n1")  # the watch event of the sync's own write
    assert q.retry("node:n1") == 30.0
    q.done("node:n1")
    assert q.get(0.2) is None, "the failed key came back before its backoff"
    assert len(q) == 1  # still scheduled, by its backoff


def test_a_key_that_succeeded_but_changed_meanwhile_is_requeued_at_once() -> None:
    q = WorkQueue(base_delay=30.0)
    q.add("claim:a")
    assert q.get(0.1) == "claim:a"
    q.add("claim:a")
    q.forget("claim:a")
    q.done("claim:a")
    assert q.get(0.1) == "claim:a"
    q.done("claim:a")


def test_a_failed_key_still_runs_when_its_backoff_ends() -> None:
    q = WorkQueue(base_delay=0.05, max_delay=0.05)
    q.add("k")
    assert q.get(0.1) == "k"
    q.add("k")
    q.retry("k")
    q.done("k")
    assert q.get(2.0) == "k"  # bounded wait, not a timing assertion
    q.done("k")
    assert q.get(0.1) is None
