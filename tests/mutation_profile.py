"""pytest plugin for mutation runs only (setup.cfg [mutmut] loads it with
``-p tests.mutation_profile``).

* Hypothesis stops at the first failure instead of shrinking it. A mutant is
  caught as soon as an example fails; shrinking the model-based test's
  failure takes minutes and would only turn a kill into a timeout.
* The agent's checkpoint wait gives up after ``WAIT_S`` instead of 30 s. A
  mutant that kills the checkpoint writer thread (an exception other than
  OSError) leaves every waiter to its timeout; with 30 s each such mutant
  cost half a minute to be caught. A real write on the test's tmpfs takes
  milliseconds, so the shorter bound changes no verdict; it only makes the
  run affordable."""

from hypothesis import Phase, settings

from cni.agent import checkpoint

settings.register_profile(
    "mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate), deadline=None
)
settings.load_profile("mutation")

WAIT_S = 5.0
_wait = checkpoint.Checkpoint.wait


def _bounded_wait(self: checkpoint.Checkpoint, seq: int, timeout: float = WAIT_S) -> None:
    _wait(self, seq, min(timeout, WAIT_S))


checkpoint.Checkpoint.wait = _bounded_wait  # type: ignore[method-assign]
