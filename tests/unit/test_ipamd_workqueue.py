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
