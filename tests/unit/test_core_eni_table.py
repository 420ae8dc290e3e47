"""core/eni_limits_table.py embeds shared/facts/eni-limits.csv verbatim."""

from __future__ import annotations

from pathlib import Path

from core.eni_limits_table import ENI_LIMITS_CSV

FACTS = Path(__file__).resolve().parents[2] / ".." / "shared" / "facts" / "eni-limits.csv"


def test_embedded_table_equals_the_facts_csv() -> None:
    assert FACTS.is_file(), f"{FACTS} missing: the facts live in ../shared/facts beside the repo"
    facts = [line.strip() for line in FACTS.read_text().strip().splitlines()]
    embedded = [line.strip() for line in ENI_LIMITS_CSV.strip().splitlines()]
    assert embedded == facts


def test_every_row_has_five_columns() -> None:
    for line in ENI_LIMITS_CSV.strip().splitlines():
        assert len(line.split(",")) == 5, line
