#!/usr/bin/env bash
# Creates .venv with the project (editable) and its test tools, and generates the
# gRPC stubs from protos/. Re-running only installs what changed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.deps-stamp
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip setuptools wheel
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
else
  echo "Python dependencies up to date"
fi
.venv/bin/python -m protos.build
