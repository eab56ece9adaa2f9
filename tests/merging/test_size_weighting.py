"""Group sizes carried through merging: the exact-budget trimmer's size-weighted means and matching,
and ToMe's size weighting across rounds (authors' and raster order), each against the loop
reference of ``rounds_reference`` (float64, token by token) or a hand-worked value. Every case is
checked to tell the weighted rule from the plain mean of the merged rows, so it can fail."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.merging.budget import ExactBudget, trim_to
from lmms_sttm.merging.groups import from_groups, from_keep, merge_kept
from lmms_sttm.merging.tome import TomeReducer, authors_rounds, bipartite_assign
from tests.merging.rounds_reference import rounds


def _rows(token_map: torch.Tensor, count: int) -> list[list[int]]:
    return [torch.nonzero(token_map == j).squeeze(1).tolist() for j in range(count)]


def _video(t: int, h: int, w: int, seed: int, channels: int = 6) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scene = torch.randn(1, h * w, channels, generator=gen)
    return (scene + 0.8 * torch.randn(t, h * w, channels, generator=gen)).reshape(-1, channels)


def test_merge_kept_weights_members_by_their_sizes_by_hand():
    # originals 0..5 (1-D features); groups {0,1,2} -> mean 1, {3} -> 3, {4,5} -> 4.5
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    plan = from_groups(x, torch.tensor([0, 0, 0, 3, 4, 4]), (1, 1, 6))
    assert plan.num_patches.tolist() == [3, 1, 2]
    out = merge_kept(plan, torch.tensor([0, 0, 1]))  # {0,1,2,3} and {4,5}
    # weighted: (3*1 + 1*3) / 4 = 1.5 = mean of originals 0..3; the plain mean of 1 and 3 would be 2
    assert out.features[:, 0].tolist() == [1.5, 4.5]
    assert out.num_patches.tolist() == [4, 2]
    assert out.token_map.tolist() == [0, 0, 0, 0, 1, 1]
    torch.testing.assert_close(out.features, out.mean(x))


@pytest.mark.parametrize(("seed", "target"), [(0, 4), (4, 7), (6, 11)])
def test_trim_to_a_merged_plan_matches_the_reference_and_the_original_means(seed, target):
    """A plan with uneven sizes (a ToMe plan), trimmed: the same groups as the loop reference run on
    its kept tokens with their sizes, and every feature the mean of the originals it covers."""
    grid = (3, 4, 4)
    x = _video(*grid, seed=seed)
    plan = TomeReducer(keep=0.5, order="raster")(x, grid)
    sizes = plan.num_patches.tolist()
    assert len(set(sizes)) > 1
    out = trim_to(plan, target)
    check_reduction(out, x, grid)
    assert out.num_kept == target
    members, feats = rounds(plan.features, sizes, target, "raster")
    covered = [sorted(i for k in group for i in _rows(plan.token_map, plan.num_kept)[k]) for group in members]
    assert sorted(_rows(out.token_map, out.num_kept)) == sorted(covered)
    torch.testing.assert_close(out.features, out.mean(x), atol=1e-5, rtol=0)
    by_rep = {min(r): f for r, f in zip(covered, feats, strict=True)}
    ref = torch.stack([by_rep[int(r)] for r in out.rep_index]).float()
    torch.testing.assert_close(out.features, ref, atol=1e-5, rtol=0)
    # the case can fail: the plain mean of merged rows groups or averages differently
    plain_members, plain_feats = rounds(plan.features, sizes, target, "raster", weighted=False)
    differs = plain_members != members or any(
        not torch.allclose(a, b, atol=1e-4) for a, b in zip(plain_feats, feats, strict=True)
    )
    assert differs


def test_trim_to_a_pruning_plan_weights_kept_features_by_coverage():
    """A pruning plan keeps its tokens' own features; trimming averages them by how many originals
    each covers (hand-worked: kept 0 covers 3, kept 3 covers 1, kept 4 covers 2)."""
    x = torch.tensor([[1.0, 0.0], [0.0, 9.0], [0.0, 9.0], [1.0, 0.2], [0.0, 1.0], [5.0, 5.0]])
    keep = torch.tensor([True, False, False, True, True, False])
    plan = from_keep(x, keep, torch.tensor([0, 0, 0, 3, 4, 4]), (1, 1, 6))
    assert plan.num_patches.tolist() == [3, 1, 2]
    out = trim_to(plan, 2)
    # one round, A = {0, 4} B = {3}: kept 0 is the closer to 3 (cos .98 vs .20) and merges into it
    assert out.token_map.tolist() == [0, 0, 0, 0, 1, 1]
    torch.testing.assert_close(out.features[0], (3 * x[0] + 1 * x[3]) / 4)
    torch.testing.assert_close(out.features[1], x[4])


def test_exact_budget_trims_a_tome_plan_to_the_means_of_the_originals():
    grid = (4, 5, 5)
    x = _video(*grid, seed=5)
    plan = ExactBudget(TomeReducer(keep=0.5), 0.2, 0.01)(x, grid)
    assert plan.num_kept == 20 and int(plan.num_patches.max()) > 2
    torch.testing.assert_close(plan.features, plan.mean(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("grid", "target", "seed"),
    [((4, 4, 4), 9, 1), ((3, 5, 4), 6, 0), ((6, 3, 3), 5, 2), ((2, 6, 6), 10, 3)],
)
def test_authors_rounds_weight_by_size_across_rounds(grid, target, seed):
    """Several rounds: the rows of every round are size-weighted means (checked against the plain
    mean of merged rows, which must give other groups on each case)."""
    x = _video(*grid, seed=seed)
    n = x.shape[0]
    label, _ = authors_rounds(x, target)
    members, _ = rounds(x, [1] * n, target, "authors")
    assert _rows(label, target) == members
    plain, _ = rounds(x, [1] * n, target, "authors", weighted=False)
    assert plain != members


@pytest.mark.parametrize(
    ("grid", "target", "seed"),
    [((4, 4, 4), 9, 1), ((3, 5, 4), 6, 0), ((6, 3, 3), 5, 3), ((2, 6, 6), 10, 2)],
)
def test_raster_rounds_weight_by_size_across_rounds(grid, target, seed):
    x = _video(*grid, seed=seed)
    n = x.shape[0]
    label = bipartite_assign(x, torch.ones(n, dtype=torch.long), target)
    members, _ = rounds(x, [1] * n, target, "raster")
    assert sorted(_rows(label, target)) == sorted(members)
    plain, _ = rounds(x, [1] * n, target, "raster", weighted=False)
    assert sorted(plain) != sorted(members)


def test_raster_rounds_start_from_the_given_sizes():
    """``bipartite_assign`` on rows that already cover several originals: first-round means use them."""
    x = _video(2, 4, 4, seed=9)
    sizes = torch.tensor([1 + (i * 7) % 5 for i in range(x.shape[0])])
    label = bipartite_assign(x, sizes, 5)
    members, _ = rounds(x, sizes.tolist(), 5, "raster")
    assert sorted(_rows(label, 5)) == sorted(members)
    assert sorted(rounds(x, [1] * x.shape[0], 5, "raster")[0]) != sorted(members)
