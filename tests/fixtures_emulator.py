"""The cloud emulator as a fixture.

- ``emu``: vpcsim serving the ipamd world (``harness.ipamd_world.SPEC``: the VPC,
  its subnets and instances the ipamd tests use) over HTTP, the real SDK's way in,
  default faults; stopped after the test. A module that needs other faults or
  another world defines its own ``emu``, which takes precedence.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.ipamd_world import SPEC
from vpcsim.testing import EmulatorHandle, run_emulator


@pytest.fixture
def emu() -> Iterator[EmulatorHandle]:
    with run_emulator(SPEC) as handle:
        yield handle
