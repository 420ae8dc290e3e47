"""What an action handler gets: the world, the request id (= task id of an
async call), the fault knobs and a random source."""

from __future__ import annotations

import random
from dataclasses import dataclass

from vpcsim.faults import Faults
from vpcsim.world import World


@dataclass
class Ctx:
    world: World
    request_id: str
    faults: Faults
    rng: random.Random
    action: str

    @property
    def task_delay_s(self) -> float:
        return self.faults.task_delay_s(self.action, self.rng)

    def task_fails(self) -> bool:
        return self.faults.roll(self.faults.task_fail_ratio, self.action, self.rng)
