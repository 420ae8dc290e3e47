#!/usr/bin/env bash
# The whole test suite: ruff, mypy (strict), import-linter contracts, then pytest.
# Extra arguments go to pytest (e.g. hack/test.sh tests/unit -k limits).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
[ -x .venv/bin/python ] || { echo "no .venv: run hack/setup.sh (make test does)" >&2; exit 1; }
export PATH="$here/.venv/bin:$PATH"
lint_only=0
if [ "${1:-}" = "--lint-only" ]; then lint_only=1; shift; fi

echo "==> ruff"; ruff check .
echo "==> mypy (strict)"; mypy
echo "==> import-linter"; lint-imports
[ "$lint_only" = 1 ] && exit 0
echo "==> pytest"
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest's 5 means no test ran: that is a failure here, not a pass.
exit "$rc"
