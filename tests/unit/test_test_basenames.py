"""pytest imports test modules by their basename (rootdir-relative, no packages): two
test files with one name in different directories stop the whole run at collection
("import file mismatch"), so every test file's name is unique across tests/."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_name_is_unique() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for f in TESTS.rglob("test_*.py"):
        where[f.name].append(str(f.relative_to(TESTS)))
    clashes = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
