"""The baselines as the STTM authors ran them: hand-worked cases of each rule (counts in their float
arithmetic, ToMe's M//2 cap and output order, DyCoke's loop bound and row order, FastV's count and
tie rule) and the vectorised code against the loop-based references of ``baseline_reference``."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.merging.dycoke import DycokeStage1Reducer, reference_frames
from lmms_sttm.merging.fastv import FastVReducer, fastv_count, fastv_prune
from lmms_sttm.merging.tome import TomeReducer, authors_target, tome_video
from tests.merging.baseline_reference import dycoke_authors, fastv_authors, tome_authors


def _angles(*degrees: float) -> torch.Tensor:
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=1).float()


def _video(t: int, h: int, w: int, seed: int, channels: int = 8, noise: float = 0.7) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scene = torch.randn(1, h * w, channels, generator=gen)
    return (scene + noise * torch.randn(t, h * w, channels, generator=gen)).reshape(-1, channels)


def _rows(plan) -> list[list[int]]:
    return [torch.nonzero(plan.token_map == j).squeeze(1).tolist() for j in range(plan.num_kept)]


# ------------------------------------------------------------------------------------------ ToMe
def test_tome_count_uses_the_authors_float_arithmetic():
    assert 1 - 0.7 == 0.30000000000000004
    x = _video(10, 14, 16, seed=0)  # N = 2240 (a Qwen2-VL-like 14 x 16 grid)
    assert authors_target(2240, 0.7) == 673 and math.ceil(0.3 * 2240) == 672
    assert tome_video(x, (10, 14, 16), prune=0.7).num_kept == 673  # the authors' count
    assert tome_video(x, (10, 14, 16), keep=0.3).num_kept == 672  # exact budgets: keep fraction
    assert tome_video(x, (10, 14, 16), prune=0.7, order="raster").num_kept == 673


def test_tome_odd_round_is_capped_at_half_and_reorders():
    # t0..t4 at 0, 10, 90, 95, 80 degrees; target ceil(5 * (1 - 0.6)) = 2.
    # Round 1 (M = 5): A = t0, t2, t4 with best B t1 (.985), t3 (.996), t3 (.966); r = min(3, 5 // 2)
    # = 2: t2 -> t3, t0 -> t1; rows become [t4, t0+t1, t2+t3] (unmerged A first, then B).
    # Round 2 (M = 3): A = t4 (80), t2+t3 (92.5); B = t0+t1 (5): t4 scores .26, t2+t3 .04; r = 1:
    # t4 -> t0+t1; rows [t2+t3, t0+t1+t4].
    x = _angles(0, 10, 90, 95, 80)
    plan = tome_video(x, (1, 1, 5), prune=0.6)
    assert _rows(plan) == [[2, 3], [0, 1, 4]]
    assert plan.rep_index.tolist() == [2, 0]  # smallest member; rows not in raster order
    assert plan.position_index.tolist() == [3, 1]  # the merge destinations (authors' token_idx)
    torch.testing.assert_close(plan.features, torch.stack([x[[2, 3]].mean(0), x[[0, 1, 4]].mean(0)]))
    check_reduction(plan, x, (1, 1, 5))
    assert tome_authors(x, 0.6) == ([[2, 3], [0, 1, 4]], [3, 1])
    # the raster variant merges all three A tokens in one round (cap ceil(M / 2)): t4 -> t3
    raster = tome_video(x, (1, 1, 5), prune=0.6, order="raster")
    assert _rows(raster) == [[0, 1], [2, 3, 4]] and raster.position_index is None


@pytest.mark.parametrize(
    ("grid", "prune", "seed"),
    [
        ((4, 5, 5), 0.5, 0),
        ((4, 5, 5), 0.7, 1),
        ((7, 3, 3), 0.7, 2),
        ((3, 4, 5), 0.85, 3),
        ((5, 3, 4), 0.3, 4),
    ],
)
def test_tome_matches_the_loop_reference(grid, prune, seed):
    x = _video(*grid, seed=seed)
    plan = TomeReducer(prune=prune)(x, grid)
    members, dest = tome_authors(x, prune)
    assert _rows(plan) == members
    assert plan.position_index.tolist() == dest
    assert plan.rep_index.tolist() == [m[0] for m in members]
    torch.testing.assert_close(plan.features, torch.stack([x[m].mean(0) for m in members]), atol=1e-5, rtol=0)
    check_reduction(plan, x, grid)


# --------------------------------------------------------------------------------- DyCoke stage 1
def test_dycoke_frame_t_minus_2_stays_whole_when_t_divisible_by_4():
    ref = reference_frames(16).tolist()
    assert ref == [-1, 0, 0, 2, -1, 4, 4, 6, -1, 8, 8, 10, -1, 12, -1, 14]  # frame 14 = T-2 whole
    assert reference_frames(18).tolist()[14] == 12 and reference_frames(18).tolist()[16] == -1
    assert reference_frames(11).tolist()[10] == -1  # odd final frame (10 % 4 == 2) whole
    assert reference_frames(13).tolist()[10] == 8
    x = _video(16, 3, 3, seed=5)
    plan = DycokeStage1Reducer(prune=0.7)(x, (16, 3, 3))
    assert plan.num_kept == 5 * 9 + 11 * int((1 - 0.7) * 9)  # whole: 0, 4, 8, 12, 14
    kept_in_14 = ((plan.rep_index >= 14 * 9) & (plan.rep_index < 15 * 9)).sum()
    assert int(kept_in_14) == 9


def test_dycoke_rows_of_a_pruned_frame_follow_increasing_similarity():
    ref = _angles(0, 0, 0, 0)
    frame1 = _angles(80, 10, 40, 5)  # cosines to frame 0: .17, .98, .77, .996
    x = torch.cat([ref, frame1])
    plan = DycokeStage1Reducer(prune=0.5)(x, (2, 2, 2))
    assert plan.rep_index.tolist() == [0, 1, 2, 3, 4, 6]  # frame 0 raster, then least similar first
    raster = DycokeStage1Reducer(prune=0.5, order="raster")(x, (2, 2, 2))
    assert raster.rep_index.tolist() == [0, 1, 2, 3, 4, 6] and torch.equal(raster.features, plan.features)
    x2 = torch.cat([ref, _angles(40, 10, 80, 5)])  # least similar is now position 2, then 0
    assert DycokeStage1Reducer(prune=0.5)(x2, (2, 2, 2)).rep_index.tolist() == [0, 1, 2, 3, 6, 4]
    assert DycokeStage1Reducer(prune=0.5, order="raster")(x2, (2, 2, 2)).rep_index.tolist() == [
        0,
        1,
        2,
        3,
        4,
        6,
    ]


@pytest.mark.parametrize(
    ("frames", "prune", "seed"),
    [(16, 0.7, 0), (12, 0.925, 1), (63, 0.7, 2), (10, 0.7, 3), (11, 0.5, 4), (4, 0.7, 5)],
)
def test_dycoke_matches_the_loop_reference(frames, prune, seed):
    grid = (frames, 3, 4)
    x = _video(*grid, seed=seed)
    plan = DycokeStage1Reducer(prune=prune)(x, grid)
    assert plan.rep_index.tolist() == dycoke_authors(x, frames, prune)
    assert torch.equal(plan.features, x[plan.rep_index])
    check_reduction(plan, x, grid)
    raster = DycokeStage1Reducer(prune=prune, order="raster")(x, grid)
    assert raster.rep_index.tolist() == sorted(plan.rep_index.tolist())


# ------------------------------------------------------------------------------------------ FastV
def test_fastv_count_uses_the_authors_float_arithmetic():
    assert fastv_count(15, evict=0.7) == 5  # round(15 * 0.30000000000000004) = round(4.500...01)
    assert fastv_count(15, keep=0.3) == 4  # round(4.5) = 4 (half to even)
    assert fastv_count(2240, evict=0.7) == 672 and fastv_count(7, evict=0.5) == 4  # round(3.5) = 4
    scores = torch.rand(15, generator=torch.Generator().manual_seed(0))
    plan = FastVReducer(evict=0.7)(torch.randn(15, 4), (1, 3, 5), type("C", (), {"scores": scores})())
    assert plan.num_kept == 5


def test_fastv_ties_keep_the_lower_index():
    scores = torch.tensor([0.5, 0.2, 0.5, 0.5, 0.1, 0.5], dtype=torch.bfloat16)
    plan = fastv_prune(torch.randn(6, 4), (1, 2, 3), scores, evict=0.5)
    assert plan.rep_index.tolist() == [0, 2, 3]
    assert fastv_authors(scores.float(), 0.5) == [0, 2, 3]


@pytest.mark.parametrize(("n", "evict", "seed"), [(200, 0.5, 0), (200, 0.7, 1), (333, 0.7, 2), (51, 0.5, 3)])
def test_fastv_matches_the_loop_reference(n, evict, seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 40, (n,), generator=gen).float() / 40  # many exact ties
    plan = fastv_prune(torch.randn(n, 4, generator=gen), (1, 1, n), scores, evict=evict)
    assert plan.rep_index.tolist() == fastv_authors(scores, evict)
