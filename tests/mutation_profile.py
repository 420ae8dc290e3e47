"""pytest plugin for mutation runs only (setup.cfg [mutmut] loads it with
``-p tests.mutation_profile``): Hypothesis stops at the first failure instead
of shrinking it. A mutant is caught as soon as an example fails; shrinking the
model-based test's failure takes minutes and would only turn a kill into a
timeout."""

from hypothesis import Phase, settings

settings.register_profile(
    "mutation", phases=(Phase.explicit, Phase.reuse, Phase.generate), deadline=None
)
settings.load_profile("mutation")
