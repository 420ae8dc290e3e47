"""The checkpoint writer thread (``cni.agent.checkpoint.Checkpoint``) outlives
any failure of one write, and its waiters hear of a failure at once: an
exception other than ``OSError`` (a snapshot that cannot be encoded, a bug)
used to end the thread silently, leaving every later ADD to fail with "write
timed out" after 30 s until the agent restarted (docs/mutation.md, "Found on
the way"). The waits below are bounded well above the time a write takes; a
"write timed out" error means the waiter was never told."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cni.agent import checkpoint
from cni.agent.pool import PoolState

WAIT = 10.0  # bounded: a write takes milliseconds; reaching this is the failure


class _Death(BaseException):
    """What no write handler catches (as SystemExit would be)."""


def _wait_ok(cp: checkpoint.Checkpoint) -> None:
    """A later change gets written (bounded: the error of the failure before
    stays until the writer's next good write)."""
    for _ in range(100):
        try:
            cp.wait(cp.mark(), timeout=WAIT)
            return
        except checkpoint.CheckpointError as exc:
            assert "timed out" not in str(exc), exc
            time.sleep(0.1)
    raise AssertionError("the writer never wrote again")


def test_a_write_failing_with_any_exception_is_reported_at_once_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.json"
    bad = [True]

    def snapshot() -> dict[str, Any]:
        d = PoolState().to_dict()
        if bad[0]:
            d["oops"] = object()  # json cannot encode it: TypeError, not OSError
        return d

    cp = checkpoint.Checkpoint(str(path), snapshot)
    with pytest.raises(checkpoint.CheckpointError) as err:
        cp.wait(cp.mark(), timeout=WAIT)
    msg = str(err.value)
    assert "timed out" not in msg, f"the waiter was not told of the failure: {msg}"
    assert f"failed to write checkpoint {path}" in msg and "TypeError" in msg, msg
    bad[0] = False  # the next write can be encoded: the same writer thread writes it
    thread = cp._thread
    _wait_ok(cp)
    assert cp._thread is thread and thread is not None and thread.is_alive()
    assert path.exists()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the death
def test_a_writer_that_dies_tells_its_waiters_at_once_and_the_next_change_restarts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.json"
    cp = checkpoint.Checkpoint(str(path), lambda: PoolState().to_dict())
    real = cp._write

    def dies(compact: bool = False) -> int:
        raise _Death("killed in the middle of a write")

    monkeypatch.setattr(cp, "_write", dies)
    with pytest.raises(checkpoint.CheckpointError) as err:
        cp.wait(cp.mark(), timeout=WAIT)
    msg = str(err.value)
    assert "timed out" not in msg, f"the waiter was not told the writer died: {msg}"
    assert msg.startswith("checkpoint writer stopped: "), msg
    assert "killed in the middle of a write" in msg, msg
    dead = cp._thread
    assert dead is not None
    dead.join(WAIT)
    assert not dead.is_alive()
    monkeypatch.setattr(cp, "_write", real)
    _wait_ok(cp)  # the next change starts a new writer
    assert cp._thread is not dead and cp._thread is not None and cp._thread.is_alive()
