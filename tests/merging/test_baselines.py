"""Baseline reducers on small tensors: token counts, plan validity, and what each method keeps."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.merging.dycoke import DycokeStage1Reducer, reference_frames
from lmms_sttm.merging.fastv import fastv_prune
from lmms_sttm.merging.framefusion import FrameFusionReducer, compute_budget_count, framefusion_reduce
from lmms_sttm.merging.pool import pool_shape, pool_video
from lmms_sttm.merging.tome import tome_video

GRID = (8, 14, 14)
N = 8 * 14 * 14


def _video(seed: int = 0, channels: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scene = torch.randn(1, 196, channels, generator=gen)
    return (scene + 0.6 * torch.randn(8, 196, channels, generator=gen)).reshape(N, channels)


def _valid(plan, hidden, grid) -> None:
    check_reduction(plan, hidden, grid)
    assert plan.token_map.shape == (hidden.shape[0],)
    assert int(plan.token_map.max()) == plan.num_kept - 1 and int(plan.token_map.min()) == 0
    assert torch.equal(plan.num_patches, torch.bincount(plan.token_map, minlength=plan.num_kept))
    # every kept token covers its own representative
    assert torch.equal(plan.token_map[plan.rep_index], torch.arange(plan.num_kept))


@pytest.mark.parametrize("keep", [0.5, 0.3, 0.15])
def test_tome_keeps_ceil_and_averages_members(keep):
    x = _video()
    plan = tome_video(x, GRID, keep)
    _valid(plan, x, GRID)
    assert plan.num_kept == math.ceil(keep * N)
    torch.testing.assert_close(plan.features, plan.mean(x), atol=1e-5, rtol=0)


def test_tome_merges_exact_duplicates_first():
    x = _video()[:392].clone()  # two frames
    x[1::2] = x[0::2]  # every A token has an identical B partner (its right neighbour)
    plan = tome_video(x, (2, 14, 14), 0.5)
    assert plan.num_kept == 196
    assert torch.equal(plan.token_map[0::2], plan.token_map[1::2])


@pytest.mark.parametrize(("prune", "per_frame"), [(0.70, 58), (0.925, 14)])
def test_dycoke_stage1_counts_match_the_authors_formula(prune, per_frame):
    x = _video()
    plan = DycokeStage1Reducer(prune=prune)(x, GRID)
    _valid(plan, x, GRID)
    assert plan.num_kept == 3 * 196 + 5 * per_frame  # frames 0, 4 and 6 (= T-2, authors' bound) whole
    assert reference_frames(8).tolist() == [-1, 0, 0, 2, -1, 4, -1, 6]
    assert torch.equal(plan.features, x[plan.rep_index])  # pruning keeps tokens' own features


def test_dycoke_stage1_keeps_the_least_similar_tokens():
    x = _video()[:392].clone()
    x[196:] = x[:196]
    changed = torch.tensor([3, 50, 77, 190])
    x[196 + changed] = -x[196 + changed]
    plan = DycokeStage1Reducer(prune=1 - 4 / 196 - 1e-6)(x, (2, 14, 14))
    assert plan.num_kept == 196 + 4
    assert sorted(plan.rep_index[196:].tolist()) == (196 + changed).tolist()
    assert int(plan.token_map[196 + 5]) == 5  # a dropped token is attributed to its reference


@pytest.mark.parametrize(("keep", "shape"), [(0.5, (10, 10)), (0.3, (8, 8)), (0.15, (5, 5))])
def test_pool_bins_partition_frames(keep, shape):
    x = _video()
    assert pool_shape(14, 14, keep) == shape
    plan = pool_video(x, GRID, keep)
    _valid(plan, x, GRID)
    assert plan.num_kept == 8 * shape[0] * shape[1]
    torch.testing.assert_close(plan.features, plan.mean(x), atol=1e-5, rtol=0)
    area = (plan.tlbr[:, 3] - plan.tlbr[:, 1]) * (plan.tlbr[:, 4] - plan.tlbr[:, 2])
    assert torch.equal(area, plan.num_patches)
    assert pool_shape(14, 14, 0.5, tol=0.005) in ((7, 14), (14, 7))


@pytest.mark.parametrize("keep", [0.5, 0.3])
def test_fastv_keeps_the_top_scored_tokens_in_order(keep):
    x = _video()
    scores = torch.rand(N, generator=torch.Generator().manual_seed(3))
    plan = fastv_prune(x, GRID, scores, keep)
    _valid(plan, x, GRID)
    count = round(keep * N)
    assert plan.num_kept == count
    assert plan.rep_index.tolist() == sorted(torch.topk(scores, count).indices.tolist())
    assert torch.equal(plan.features, x[plan.rep_index])


def test_framefusion_merges_static_positions_then_prunes_by_score():
    x = _video()
    x.view(8, 196, -1)[1:, :98] = x.view(8, 196, -1)[:1, :98]  # first half of every frame is static
    scores = torch.rand(N, generator=torch.Generator().manual_seed(4))
    count = round(0.3 * N)
    plan = framefusion_reduce(x, GRID, scores, count)
    _valid(plan, x, GRID)
    assert plan.num_kept == count
    static = torch.arange(8)[:, None] * 196 + torch.arange(98)[None]
    groups = plan.token_map.view(8, 196)[:, :98]
    kept_static = torch.isin(plan.rep_index, static.reshape(-1))
    assert bool((plan.rep_index[kept_static] < 98).all())  # a static group is represented in frame 0
    assert bool((groups == groups[:1]).all())  # and covers all frames


def test_framefusion_compute_budget():
    assert compute_budget_count(2600, 0.3, 2, 28) == round(2600 * (0.3 * 28 - 2) / 26)
    x = _video()
    scores = torch.rand(N)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.scores, ctx.layer, ctx.num_layers = scores, 2, 28
    plan = FrameFusionReducer(cost=0.5)(x, GRID, context=ctx)
    assert plan.num_kept == compute_budget_count(N, 0.5, 2, 28)
    with pytest.raises(ValueError, match="attention"):
        FrameFusionReducer(cost=0.5)(x, GRID)
