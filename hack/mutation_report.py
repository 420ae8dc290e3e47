"""Summarise a mutmut run (hack/mutation.sh): mutants killed/total per module
and every survivor with the line it changed. A survivor whose change lies
only inside a logging call (``log.info(...)`` and friends) is tagged "log
only" and counted apart: no behaviour can depend on it (docs/mutation.md).
Arguments: the mutmut name globs the run used (none: every mutant mutmut
knows)."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path

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


class _StripLogs(ast.NodeTransformer):
    """Every ``log.<level>(...)`` call replaced by one constant."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "log":
            return ast.Constant(value="log call")
        return self.generic_visit(node)


@cache
def _functions(path: str) -> dict[str, ast.FunctionDef]:
    """The mutated copy's functions (mutmut writes every variant) by name."""
    tree = ast.parse(Path("mutants", path).read_text())
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def log_only(name: str, path: str) -> bool:
    """Whether the mutant differs from the original only inside log calls."""
    short = name.rsplit(".", 1)[-1]
    funcs = _functions(path)
    mutant, orig = funcs.get(short), funcs.get(short.rsplit("__mutmut_", 1)[0] + "__mutmut_orig")
    if mutant is None or orig is None:
        return False

    def body(fn: ast.FunctionDef) -> str:  # signature (defaults too) and body, logs stubbed
        stripped = _StripLogs().visit(ast.Module(body=list(fn.body), type_ignores=[]))
        return ast.dump(fn.args) + ast.dump(stripped)

    return body(mutant) == body(orig)


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
    survivors: list[tuple[str, bool]] = []
    for name, (status, path) in sorted(found.items()):
        per[module_of(name)][status] += 1
        if status in ("survived", "no tests"):
            logs = log_only(name, path)
            per[module_of(name)]["log only"] += logs
            survivors.append((name, logs))
    print(f"{'module':<24} {'killed':>7} {'run':>5} {'total':>6}  other")
    tk = tr = tt = 0
    for mod, c in sorted(per.items()):
        killed = sum(c[s] for s in KILLED)
        run = killed + c["survived"] + c["no tests"]
        total = sum(v for k, v in c.items() if k != "log only")
        other = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in KILLED and v)
        print(f"{mod:<24} {killed:>7} {run:>5} {total:>6}  {other}")
        tk, tr, tt = tk + killed, tr + run, tt + total
    print(f"{'all':<24} {tk:>7} {tr:>5} {tt:>6}")
    if survivors:
        print("\nsurvivors (mutmut show <name> for the diff):")
        for name, logs in survivors:
            status, path = found[name]
            tag = f"{status}, log only" if logs else status
            print(f"  {name} [{tag}]: {changed_line(name, path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
