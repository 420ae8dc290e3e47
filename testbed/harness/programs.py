"""The product's daemons as their console scripts (installed next to this Python)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


class ProgramMissingError(RuntimeError):
    """A console script of the product is not installed beside this interpreter."""


def program(name: str) -> str:
    """The path of console script ``name`` (e.g. ``tke-eni-ipamd``)."""
    found = shutil.which(name, path=str(VENV_BIN))
    if found is None:
        raise ProgramMissingError(
            f"{name} is not installed next to {sys.executable}: run hack/setup.sh "
            "(step: python venv), which installs the product editable"
        )
    return found
