"""Shared pytest configuration: fixture plugins, one module per helper."""

import sys
from pathlib import Path

# `tests.*` plugin modules are imported from the repository root (also when
# pytest is run as `pytest` rather than `python -m pytest`).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

pytest_plugins = [
    "tests.fixtures_netns",
    "tests.fixtures_controlplane",
    "tests.fixtures_node",
    "tests.fixtures_env",
    "tests.fixtures_emulator",
]
