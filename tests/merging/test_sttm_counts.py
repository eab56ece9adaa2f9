"""The exact-budget search's counter: the kept count of ``merge_video`` without running it."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmms_sttm.merging.budget import sttm_exact
from lmms_sttm.merging.sttm import merge_video, pyramid_features
from lmms_sttm.merging.sttm_counts import SttmCounts
from tests.merging.test_budget import synthetic_video

CASES = [
    ((8, 14, 14), 0, "scene", torch.float32, 1),
    ((9, 14, 14), 1, "scene", torch.bfloat16, 1),
    ((6, 10, 12), 2, "scene", torch.float32, 0),
    ((5, 7, 7), 3, "noise", torch.float32, 1),
    ((16, 7, 7), 4, "scene", torch.float64, 0),
]
OPTIONS = [{}, {"union_find": "components"}, {"best_partner": True}, {"mask_unused_slots": True}]


def _video(grid, seed, kind, dtype) -> torch.Tensor:
    return synthetic_video(grid, seed, kind=kind).reshape(*grid, -1).to(dtype)


@pytest.mark.parametrize("grid,seed,kind,dtype,root", CASES)
def test_count_equals_the_merge_at_every_threshold_pair(grid, seed, kind, dtype, root):
    """Thresholds include similarities the counter holds, so ties (``>=``) are decided as the merge does."""
    x = _video(grid, seed, kind, dtype)
    for options in OPTIONS:
        pyr, _, feats, norms = pyramid_features(x, root, "input")
        counts = SttmCounts(pyr, feats, norms, dtype=x.dtype, **options)
        own = counts.own[torch.isfinite(counts.own)]
        tau_s = [0.5, 0.9, 0.97, float(own[0]), float(own.median())]
        tau_t = [0.0, 0.5, 0.85, float(counts.sims[0]), float(counts.sims.median())]
        for ts, tt in itertools.product(tau_s, tau_t):
            assert counts.count(ts, tt) == merge_video(x, ts, tt, root_level=root, **options).num_kept, (
                options,
                ts,
                tt,
            )


@pytest.mark.parametrize("retention", [0.5, 0.3, 0.15])
def test_search_with_the_counter_takes_the_path_of_full_merges(monkeypatch, retention):
    """A full ``merge_video`` per threshold pair (the search before the counter) gives the same
    threshold pairs, the same plan and no trimming difference."""
    grid = (8, 14, 14)
    x = synthetic_video(grid, 0)
    fast, fast_info = sttm_exact(x, grid, retention)
    video = x.reshape(*grid, -1)
    with monkeypatch.context() as m:
        m.setattr(SttmCounts, "count", lambda self, a, b: merge_video(video, a, b, root_level=1).num_kept)
        slow, slow_info = sttm_exact(x, grid, retention)
    assert (fast_info.calls, fast_info.tau_s, fast_info.tau_t, fast_info.trimmed) == (
        slow_info.calls, slow_info.tau_s, slow_info.tau_t, slow_info.trimmed
    )  # fmt: skip
    assert torch.equal(fast.token_map, slow.token_map) and torch.equal(fast.features, slow.features)


def test_sttm_exact_rejects_bad_input_before_searching():
    grid = (4, 6, 6)
    x = synthetic_video(grid, 2)
    with pytest.raises(TypeError, match="unknown merge_options"):
        sttm_exact(x, grid, 0.5, merge_options={"union": "components"})
    with pytest.raises(ValueError, match="union_find"):
        sttm_exact(x, grid, 0.5, merge_options={"union_find": "fast"})
    with pytest.raises(ValueError, match="non-finite"):
        sttm_exact(torch.full_like(x, float("nan")), grid, 0.5)
