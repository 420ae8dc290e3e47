#!/usr/bin/env bash
# Creates .venv with the project and its test bed (both editable) and the test tools. Re-running only
# installs what changed. (The gRPC stubs under protos/ are committed: protos/build.py.)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.deps-stamp
want="$(cat setup.cfg pyproject.toml testbed/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip setuptools wheel
  .venv/bin/pip install -q -e '.[test]'
  # the test bed (emulator, local control plane, local nodes, local run): its own
  # distribution, never in the product's wheel or image
  .venv/bin/pip install -q -e ./testbed
  echo "$want" > "$stamp"
else
  echo "Python dependencies up to date"
fi
