"""Summarise a mutmut run (hack/mutation.sh): mutants killed/total per module
and every survivor with the line it changed. Arguments: the mutmut name globs
the run used (none: every mutant mutmut knows)."""

from __future__ import annotations

import fnmatch
import re
import sys
from collections import Counter, defaultdict

KILLED = {"killed", "timeout", "segfault"}  # a mutant that crashes or hangs the tests is caught


def module_of(name: str) -> str:
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def results() -> dict[str, tuple[str, str]]:
    """mutant name -> (status, source file), read in-process (one CLI call per
    mutant costs seconds)."""
    from mutmut.__main__ import SourceFileMutationData, status_by_exit_code, walk_mutatable_files

    found = {}
    for path in walk_mutatable_files():
        m = SourceFileMutationData(path=path)
        m.load()
        for key, code in m.exit_code_by_key.items():
            found[key] = (status_by_exit_code[code], str(path))
    return found


def changed_line(name: str, path: str) -> str:
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(name, path=path)
    lines = diff.splitlines()
    minus = [ln[1:].strip() for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    plus = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    return f"{' / '.join(minus)[:100]}  ->  {' / '.join(plus)[:100]}"


def main(globs: list[str]) -> int:
    found = results()
    if globs:
        found = {n: s for n, s in found.items() if any(fnmatch.fnmatchcase(n, g) for g in globs)}
    per: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    for name, (status, _) in sorted(found.items()):
        per[module_of(name)][status] += 1
        if status in ("survived", "no tests"):
            survivors.append(name)
    print(f"{'module':<24} {'killed':>7} {'run':>5} {'total':>6}  other")
    tk = tr = tt = 0
    for mod, c in sorted(per.items()):
        killed = sum(c[s] for s in KILLED)
        run = killed + c["survived"] + c["no tests"]
        total = sum(c.values())
        other = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in KILLED)
        print(f"{mod:<24} {killed:>7} {run:>5} {total:>6}  {other}")
        tk, tr, tt = tk + killed, tr + run, tt + total
    print(f"{'all':<24} {tk:>7} {tr:>5} {tt:>6}")
    if survivors:
        print("\nsurvivors (mutmut show <name> for the diff):")
        for name in survivors:
            status, path = found[name]
            print(f"  {name} [{status}]: {changed_line(name, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
