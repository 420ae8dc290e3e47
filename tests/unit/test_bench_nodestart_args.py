"""bench.nodestart refuses bad arguments before it starts anything (no local run)."""

from __future__ import annotations

import pytest

from bench import nodestart


@pytest.mark.parametrize(("argv", "message"), [
    (["--profiles", "fast"], "unknown latency profile 'fast'"),
    (["--prebind", "lots"], "neither 'default' nor a number"),
    (["--burst", "0"], "--burst must be at least 1"),
    (["--profiles", ","], "need at least one value"),
])
def test_bad_arguments_exit_with_a_clear_message(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        nodestart.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_percentiles() -> None:
    assert nodestart.pct([], 50) != nodestart.pct([], 50)  # nan: nothing measured
    assert nodestart.pct([3.0], 99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert nodestart.pct(values, 50) == pytest.approx(50.5, abs=0.6)
    assert nodestart.pct(values, 99) >= 99
