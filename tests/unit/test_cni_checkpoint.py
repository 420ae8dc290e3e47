"""The durable allocation state: atomic writes, shared writes, corrupt files kept aside."""

from __future__ import annotations

import threading
from pathlib import Path

from cni.agent import checkpoint
from cni.agent.pool import Allocation, PoolState


def test_write_wait_load(tmp_path: Path) -> None:
    path = str(tmp_path / "cp.json")
    state = PoolState()
    lock = threading.Lock()

    def snap() -> dict:  # type: ignore[type-arg]
        with lock:
            return state.to_dict()

    cp = checkpoint.Checkpoint(path, snap)
    seqs = []
    for i in range(20):
        with lock:
            state.allocations[f"10.0.0.{i}"] = Allocation(
                f"10.0.0.{i}", "eni", f"c{i}", "eth0", "/n", "v"
            )
            seqs.append(cp.mark())
    cp.wait(seqs[-1])
    assert checkpoint.load(path) == state
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_missing_and_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    assert checkpoint.load_checked(str(path)) == checkpoint.Loaded(PoolState(), missing=True)
    for text in ("{broken", '{"version": 2}\n', ""):
        path.write_text(text)
        loaded = checkpoint.load_checked(str(path))
        assert loaded.state == PoolState() and loaded.unreadable and not loaded.missing
        assert not path.exists()  # never overwritten: kept aside for a post-mortem
        assert Path(loaded.kept_as).read_text() == text
        assert Path(loaded.kept_as).name.startswith("cp.json.unreadable.")


def test_log_of_snapshots_torn_tail_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    state = PoolState()
    cp = checkpoint.Checkpoint(str(path), state.to_dict)
    cp.flush()
    for i in range(3):
        state.cooldown[f"10.0.0.{i}"] = float(i)
        cp.wait(cp.mark())
    assert len(path.read_text().splitlines()) == 4  # appended, not rewritten
    with open(path, "ab") as fh:  # a crash in the middle of the next write
        fh.write(b'{"version": 1, "allocations": [')
    assert checkpoint.load(str(path)).cooldown == {
        "10.0.0.0": 0.0,
        "10.0.0.1": 1.0,
        "10.0.0.2": 2.0,
    }
    checkpoint.MAX_LOG = 1  # type: ignore[misc]
    try:
        state.cooldown["10.0.0.9"] = 9.0
        cp.wait(cp.mark())
    finally:
        checkpoint.MAX_LOG = 4 << 20  # type: ignore[misc]
    assert len(path.read_text().splitlines()) == 1  # compacted to the last snapshot
    assert checkpoint.load(str(path)).cooldown["10.0.0.9"] == 9.0
