"""KnobSearch (budget_mode=exact for a method's own monotone knob), against hand-worked searches."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.merging.budget import KnobSearch
from lmms_sttm.merging.groups import from_keep, previous_kept_parent

N, GRID = 200, (2, 10, 10)
HIDDEN = torch.randn(N, 4, generator=torch.Generator().manual_seed(0))


def first(k: int):
    """A reducer keeping the first ``k`` tokens."""

    def reduce(hidden, grid, context=None):
        keep = torch.zeros(hidden.shape[0], dtype=torch.bool)
        keep[:k] = True
        return from_keep(hidden, keep, previous_kept_parent(keep), grid)

    return reduce


def step(value: float):
    """A knob that jumps: 20% kept below 0.5, 50% from 0.5 on (never within a point of 30%)."""
    return first(int(N * (0.5 if value >= 0.5 else 0.2)))


def test_a_plan_within_the_band_is_taken_at_once():
    # 61 kept for a target of 60: |61 - 60| = 1 = tol/2 * N, inside the band (<=): one call, no trim
    search = KnobSearch(lambda v: first(61), (0.0, 1.0), True, 0.3)
    plan = search(HIDDEN, GRID)
    assert plan.num_kept == 61 and search.last.calls == 1 and search.last.trimmed == 0
    assert 0 <= search.last.seconds < 60


def test_a_knob_that_jumps_over_the_target_ends_on_the_smallest_plan_above_it_trimmed():
    search = KnobSearch(step, (0.0, 1.0), True, 0.3)  # default tol: one point
    plan = search(HIDDEN, GRID)
    assert search.last.calls == 16  # never inside the band: every call of the budget is spent
    assert plan.num_kept == 60 and search.last.trimmed == 100 - 60  # the 50% plan, trimmed


def test_a_method_that_keeps_too_few_fails_naming_the_search():
    search = KnobSearch(lambda v: first(10), (0.0, 1.0), True, 0.3)
    with pytest.raises(
        ValueError, match=r"KnobSearch\(range=\(0.0, 1.0\), retention=0.3, tol=0.01\) kept 10/200"
    ):
        search(HIDDEN, GRID)
    assert search.needs_attention is False


def test_query_aware_reducers_get_the_context_on_every_call():
    class ByScore:
        needs_attention = True

        def __init__(self, keep):
            self.keep = keep

        def __call__(self, hidden, grid, context=None):
            k = max(1, math.ceil(self.keep * hidden.shape[0]))
            keep = torch.zeros(hidden.shape[0], dtype=torch.bool)
            keep[context.scores.argsort(descending=True, stable=True)[:k]] = True
            return from_keep(hidden, keep, previous_kept_parent(keep), grid)

    context = type("Ctx", (), {"scores": torch.rand(N, generator=torch.Generator().manual_seed(1))})()
    search = KnobSearch(ByScore, (0.0, 1.0), True, 0.25)
    assert search.needs_attention is True
    plan = search(HIDDEN, GRID, context=context)
    expected = torch.sort(context.scores.argsort(descending=True, stable=True)[: plan.num_kept]).values
    assert abs(plan.ratio - 0.25) <= 0.005 + 1e-9 and torch.equal(plan.rep_index, expected)


def test_among_plans_keeping_as_many_tokens_the_first_one_found_is_kept():
    """Two knob values give different plans with the same count above the target: the search keeps
    the first it counted (the most generous value) and trims that one."""

    def last(k: int):
        def reduce(hidden, grid, context=None):
            keep = torch.zeros(hidden.shape[0], dtype=torch.bool)
            keep[-k:] = True
            return from_keep(hidden, keep, previous_kept_parent(keep), grid)

        return reduce

    def knob(value: float):
        if value >= 0.75:
            return last(N // 2)  # tokens 100..199
        return first(N // 2) if value >= 0.5 else first(N // 5)

    plan = KnobSearch(knob, (0.0, 1.0), True, 0.3)(HIDDEN, GRID)
    assert plan.num_kept == 60 and int(plan.rep_index.min()) >= N // 2
