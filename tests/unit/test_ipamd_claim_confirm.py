"""ipamd.rules.claims.needs_confirming: which steps ask the cloud where a claimed
address is before trusting its VpcIP (issue 11, items 2/4 class)."""

from __future__ import annotations

import pytest

from core import models as m
from ipamd.rules.claims import Step, needs_confirming

TRUSTING = [Step.RESERVE_FOR_POD, Step.MARK_BOUND, Step.MARK_RESERVED, Step.MIGRATE, Step.RELEASE]
OTHERS = [Step.NONE, Step.ALLOCATE, Step.WAIT]


@pytest.mark.parametrize("step", TRUSTING)
def test_a_migrating_claim_confirms_before_any_step_that_trusts_its_record(step: Step) -> None:
    assert needs_confirming(m.CLAIM_PHASE_MIGRATING, "10.0.0.5", step)


@pytest.mark.parametrize("step", TRUSTING)
def test_a_record_with_an_open_release_request_is_confirmed_in_any_phase(step: Step) -> None:
    for phase in (m.CLAIM_PHASE_BOUND, m.CLAIM_PHASE_RESERVED):
        assert needs_confirming(phase, "10.0.0.5", step, record_releasing=True)


@pytest.mark.parametrize("step", TRUSTING)
def test_a_settled_claim_trusts_its_record(step: Step) -> None:
    for phase in (m.CLAIM_PHASE_BOUND, m.CLAIM_PHASE_RESERVED, m.CLAIM_PHASE_PENDING):
        assert not needs_confirming(phase, "10.0.0.5", step)


@pytest.mark.parametrize("step", OTHERS)
def test_steps_that_do_not_read_the_record_need_no_cloud_call(step: Step) -> None:
    assert not needs_confirming(m.CLAIM_PHASE_MIGRATING, "10.0.0.5", step, record_releasing=True)


def test_a_claim_without_an_ip_has_nothing_to_confirm() -> None:
    assert not needs_confirming(m.CLAIM_PHASE_MIGRATING, "", Step.MIGRATE, record_releasing=True)
