"""FastV's counts, bounds and argument checks, hand-worked (exact error messages: callers and the
settings layer show them to users)."""

from __future__ import annotations

import re

import pytest
import torch

from lmms_sttm.merging.fastv import FastVReducer, fastv_count, fastv_prune, top_scores_keep


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


class _Ctx:
    def __init__(self, scores: torch.Tensor) -> None:
        self.scores, self.layer, self.num_layers = scores, 2, 28


def test_top_scores_keep_bounds_and_ties():
    scores = torch.tensor([0.1, 0.5, 0.5, 0.2])
    assert top_scores_keep(scores, 1).tolist() == [False, True, False, False]  # tie: lower index
    assert top_scores_keep(scores, 4).tolist() == [True] * 4
    assert top_scores_keep(scores, 4).dtype == torch.bool
    for bad in (0, 5):
        with pytest.raises(ValueError, match=_exactly(f"keep count {bad} outside [1, 4]")):
            top_scores_keep(scores, bad)


def test_fastv_count_by_hand():
    assert fastv_count(10, evict=0.7) == 3 and fastv_count(2240, evict=0.7) == 672
    assert fastv_count(5, keep=0.5) == 2  # round half to even
    assert fastv_count(10, keep=0.01) == 1 and fastv_count(10, evict=0.99) == 1  # at least one
    assert fastv_count(10, keep=1.0) == 10
    for kwargs in ({}, {"keep": 0.5, "evict": 0.5}):
        with pytest.raises(ValueError, match=_exactly("FastV needs exactly one of keep= or evict=")):
            fastv_count(10, **kwargs)


def test_fastv_prune_checks_the_scores_shape():
    with pytest.raises(ValueError, match=_exactly("FastV scores (3,) do not match 4 video tokens")):
        fastv_prune(torch.zeros(4, 2), (1, 1, 4), torch.zeros(3), keep=0.5)


def test_reducer_arguments_and_counts():
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    scores = torch.arange(20.0).flip(0)  # token 0 scores highest
    kept = FastVReducer(keep=0.25)(x, (1, 4, 5), context=_Ctx(scores))
    assert kept.rep_index.tolist() == [0, 1, 2, 3, 4]
    assert FastVReducer(evict=0.5)(x, (1, 4, 5), context=_Ctx(scores)).num_kept == 10
    assert FastVReducer(keep=1).keep == 1.0 and isinstance(FastVReducer(keep=1).keep, float)
    assert FastVReducer(evict=0).evict == 0.0 and FastVReducer(evict=0).keep is None
    assert FastVReducer(keep=0.5).evict is None
    for kwargs in ({}, {"keep": 0.5, "evict": 0.5}):
        with pytest.raises(ValueError, match=_exactly("FastV needs exactly one of keep= or evict=")):
            FastVReducer(**kwargs)
    for keep in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match=_exactly(f"FastV keep fraction must be in (0, 1], got {keep}")):
            FastVReducer(keep=keep)
    for evict in (1, 1.5, -0.1):
        with pytest.raises(ValueError, match=_exactly(f"FastV evict ratio must be in [0, 1), got {evict}")):
            FastVReducer(evict=evict)
    message = "FastV needs the last prompt token's attention (run it through the engine)"
    with pytest.raises(ValueError, match=_exactly(message)):
        FastVReducer(keep=0.5)(x, (1, 4, 5))
