"""Go durations as users write them (core.duration)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.duration import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10m0s", 600),
        ("1h30m", 5400),
        ("300s", 300),
        ("0s", 0),
        ("0", 0),
        ("1.5h", 5400),
        ("2h45m30s", 9930),
        ("90m", 5400),
        ("500ms", 0.5),
        ("1m30.5s", 90.5),
        (".5s", 0.5),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("1000ns", 1e-6),
        ("+5m", 300),
        (" 10m ", 600),
    ],
)
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", "10", "10x", "abc", "h", "1h-30m", "-5m", "10 m", "1.h.5", ".s", "5d"]
)
def test_garbage_errors_name_the_value(bad: str) -> None:
    with pytest.raises(DurationError) as err:
        parse_duration(bad, what="--claim-expired-duration")
    assert repr(bad) in str(err.value)
    assert "--claim-expired-duration" in str(err.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(600, "10m0s"), (5400, "1h30m0s"), (0, "0s"), (300, "5m0s"), (59, "59s"), (3600, "1h0m0s"),
     (1.5, "1.5s")],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize("text", ["10m0s", "1h30m0s", "0s", "45s", "2h0m5s"])
def test_round_trip(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
