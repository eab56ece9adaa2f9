"""``SttmCounts`` on the grids the main cases miss: one frame (no temporal pairs at all), one-level
pyramids (a grid too small to split), and the size-weighted plan; each checked against a full
``merge_video`` at the same thresholds, and on hand-worked counts where the grid makes them obvious."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmms_sttm.merging.sttm import merge_video, pyramid_features
from lmms_sttm.merging.sttm_counts import SttmCounts, grid_layout
from tests.merging.test_budget import synthetic_video


def _video(grid, seed, dtype=torch.float32) -> torch.Tensor:
    return synthetic_video(grid, seed).reshape(*grid, -1).to(dtype)


def _assert_same_plan(got, want):
    assert got.num_kept == want.num_kept
    for name in ("features", "num_patches", "tlbr", "token_map", "rep_index"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=0, rtol=0, msg=name)
    assert got.grid == want.grid and got.features.dtype == want.features.dtype


def _check_against_merge(x, root, tau_s, tau_t, **options):
    pyr, _, feats, norms = pyramid_features(x, root, "input")
    counts = SttmCounts(pyr, feats, norms, dtype=x.dtype, **options)
    for ts, tt in itertools.product(tau_s, tau_t):
        want = merge_video(x, ts, tt, root_level=root, **options)
        assert counts.count(ts, tt) == want.num_kept, (ts, tt)
        _assert_same_plan(counts.plan(ts, tt), want)
    return counts


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_one_frame_has_no_temporal_pairs(dtype):
    x = _video((1, 8, 8), 5, dtype)
    counts = _check_against_merge(x, 0, [0.5, 0.9, 0.97, 2.0], [0.0, 0.5, 0.9])
    assert counts.first.shape == counts.second.shape == counts.sims.shape == (0,)
    assert counts.first.dtype == counts.second.dtype == torch.int64
    assert counts.sims.dtype == counts.leaves.dtype
    assert counts.layout.pairs == []  # every (row level, column level) group is empty and left out
    # tau_s above every similarity: every leaf is a node, nothing merges in one frame
    assert counts.count(2.0, 0.5) == 64


def _one_level_grids():
    return [(2, 1, 1), (3, 1, 1), (4, 1, 1)]  # (2, 1, 1): a single temporal pair


@pytest.mark.parametrize("grid", _one_level_grids())
def test_one_level_pyramid(grid):
    x = _video(grid, 2)
    pyr, _, feats, norms = pyramid_features(x, 0, "input")
    assert pyr.depth == 1 and len(feats) == 1
    counts = _check_against_merge(x, 0, [0.5, 2.0], [0.0, 0.5, 0.9, 2.0])
    assert counts.count(2.0, 2.0) == grid[0]  # no temporal merge: one token per frame
    # identical frames merge into one token at any tau_t <= 1
    same = x[:1].expand(grid[0], -1, -1, -1).contiguous()
    counts = _check_against_merge(same, 0, [0.5], [0.5, 0.99])
    assert counts.count(0.5, 0.5) == 1


def test_one_frame_one_token():
    x = _video((1, 1, 1), 1)
    counts = _check_against_merge(x, 0, [0.5], [0.5])
    assert counts.count(0.5, 0.5) == 1 and counts.sims.numel() == 0


def test_default_dtype_is_the_leaves():
    x = _video((2, 1, 1), 3, torch.bfloat16)
    pyr, _, feats, norms = pyramid_features(x, 0, "input")
    assert SttmCounts(pyr, feats, norms).plan(0.5, 2.0).features.dtype == feats[-1].dtype


@pytest.mark.parametrize("grid,root", [((4, 8, 8), 1), ((3, 8, 8), 0)])
def test_weighted_plan_equals_the_weighted_merge(grid, root):
    x = _video(grid, 7)
    pyr, _, feats, norms = pyramid_features(x, root, "input")
    counts = SttmCounts(pyr, feats, norms, dtype=x.dtype)
    differs = False
    for ts, tt in [(0.9, 0.8), (0.95, 0.9), (0.8, 0.5)]:
        weighted = counts.plan(ts, tt, weighted=True)
        _assert_same_plan(weighted, merge_video(x, ts, tt, root_level=root, weighted=True))
        plain = counts.plan(ts, tt)
        differs |= not torch.equal(weighted.features, plain.features)
    assert differs  # the weighting changes some feature here


@pytest.mark.parametrize("grid,root", [((3, 8, 8), 0), ((2, 7, 7), 0), ((2, 14, 14), 1), ((2, 16, 16), 0)])
def test_grid_layout_pairs_are_sorted_and_oriented_as_documented(grid, root):
    """``GridLayout.pairs``: per group, ``(rows, cols)`` strictly increasing (sorted for
    ``pair_dots``); the row side is the frame-t+1 cell exactly when the anchor (the top-left leaf of
    the smaller, i.e. finer-level, cell) is that cell's top-left leaf."""
    pyr = pyramid_features(_video(grid, 4), root, "input")[0]
    # built afresh (not the memoised table an earlier test may have left)
    layout = grid_layout.__wrapped__(*grid, pyr.sizes[0], torch.device("cpu"))
    hw = grid[1] * grid[2]
    assert len(layout.pairs) == pyr.depth**2
    for lr, lc, rows, cols, first, second in layout.pairs:
        keys = list(zip(rows.tolist(), cols.tolist(), strict=True))
        assert keys == sorted(set(keys)), (lr, lc)
        assert torch.equal(layout.corner[first] // hw + 1, layout.corner[second] // hw)  # frames t, t+1
        row_is_second = (rows + layout.offsets[lr]) == second
        col_is_second = (cols + layout.offsets[lc]) == second
        assert bool((row_is_second ^ col_is_second).all())
        # the level of each pair's frame-t+1 cell; the finer level has the larger index
        second_level = torch.where(row_is_second, lr, lc)
        anchor = torch.where(second_level == max(lr, lc), layout.corner[second], layout.corner[first])
        assert torch.equal(row_is_second, anchor % hw == layout.corner[second] % hw), (lr, lc)
