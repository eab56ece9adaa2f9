"""The authors' FrameFusion (``merging/framefusion_authors.py``) piece by piece on hand-worked
inputs: link scores (cosines of same-position neighbours), merging one link, the merge stage on a
grid taller than wide, the stop share reached exactly, the prune's attribution of dropped tokens,
the stage schedule and the refusals."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.merging.framefusion_authors import FrameFusion, link_scores, merge_links, pruning_ratio
from lmms_sttm.merging.stage import Stage


def test_link_scores_by_hand():
    # positions 0, 1, 0, 1: position-ordered slots are tokens 0, 2 (position 0) then 1, 3
    hidden = torch.tensor([[3.0, 4.0], [1.0, 0.0], [6.0, 8.0], [1.0, 1.0]])
    scores, order = link_scores(hidden, torch.tensor([0, 1, 0, 1]), 2)
    assert order.tolist() == [0, 2, 1, 3]
    # slot 1: cos(h0, h2) = 1 (parallel, lengths 5 and 10); slot 2 crosses positions; slot 3: 1/sqrt(2)
    torch.testing.assert_close(scores, torch.tensor([-2.0, 1.0, -2.0, 1 / math.sqrt(2)]))


def test_merge_links_one_link_by_hand():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    order = torch.tensor([0, 2, 1, 3])
    merged, keep, root = merge_links(hidden, order, torch.tensor([1]))  # slot 1: token 2 into token 0
    torch.testing.assert_close(merged, torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]]))
    assert keep.tolist() == [True, True, False, True] and root.tolist() == [0, 1, 0, 3]
    # a run of two links (slots 1 and 2 of one position) goes into the token before the run
    merged, keep, root = merge_links(hidden, torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2]))
    torch.testing.assert_close(merged[0], torch.tensor([4.0, 1.0]) / 3)
    assert keep.tolist() == [True, False, False, True] and root.tolist() == [0, 0, 0, 3]


def test_merge_links_without_links_keeps_everything():
    hidden = torch.randn(3, 2)
    merged, keep, root = merge_links(hidden, torch.tensor([0, 1, 2]), torch.zeros(0, dtype=torch.long))
    assert torch.equal(merged, hidden) and root.tolist() == [0, 1, 2]
    assert keep.dtype == torch.bool and keep.tolist() == [True, True, True]


def _context(scores=None, layer=0):
    return AttentionContext(scores=scores, layer=layer, num_layers=4)


def test_merge_stage_on_a_grid_taller_than_wide():
    # (T, H, W) = (2, 3, 2): 6 positions; only position 5's two frames (tokens 5 and 11) are alike
    grid = (2, 3, 2)
    hidden = torch.eye(12)
    hidden[11] = hidden[5] + 0.5 * hidden[11]  # cosine 1 / sqrt(1.25) >= 0.6
    run = FrameFusion(0.5).start(grid, 4, 0)
    plan = run.run(hidden, grid, _context())
    assert run.sparsities == [1 / 12] and run.finish_merging  # 1/12 is below min_share 0.1
    assert plan.grid == grid and plan.num_kept == 11
    assert plan.rep_index.tolist() == list(range(11))
    assert plan.token_map.tolist() == [*range(11), 5]
    torch.testing.assert_close(plan.features[5], (hidden[5] + hidden[11]) / 2)
    assert plan.num_patches.tolist() == [1] * 5 + [2] + [1] * 5


def test_merge_share_equal_to_the_stop_share_goes_on_merging():
    # 10 tokens, exactly one link: share = 1/10 = min_share, not below it
    grid = (2, 5, 1)
    hidden = torch.eye(10)
    hidden[7] = hidden[2] + 0.5 * hidden[7]
    run = FrameFusion(0.5).start(grid, 4, 0)
    assert pruning_ratio([], 0.5, 4) == 0.5  # the bound: 0.1 < 0.5 merges every qualifying link
    plan = run.run(hidden, grid, _context())
    assert run.sparsities == [0.1] and plan.num_kept == 9
    assert not run.finish_merging and not run.finish_pruning
    run.calls = 1
    assert run.next_stage() == Stage(0, needs_attention=False, position_rule="original", point="attention")


def test_prune_attributes_dropped_tokens_to_the_previous_kept_one():
    grid = (1, 1, 6)
    run = FrameFusion(0.5).start(grid, 4, 0)
    run.finish_merging = True
    # ratio 0.5 with no sparsities: keep round(6 * 0.5) = 3 tokens, the best-scored 1, 3, 4
    scores = torch.tensor([0.1, 0.9, 0.0, 0.8, 0.7, 0.2])
    hidden = torch.randn(6, 4)
    plan = run.run(hidden, grid, _context(scores, layer=2))
    assert run.branch == "prune" and run.finish_pruning and run.next_stage() is None
    assert plan.rep_index.tolist() == [1, 3, 4]
    # token 0 precedes every kept one: the first kept; 2 -> 1's row; 5 -> 4's row
    assert plan.token_map.tolist() == [0, 0, 0, 1, 2, 2]
    assert plan.num_patches.tolist() == [3, 1, 2]
    torch.testing.assert_close(plan.features, hidden[[1, 3, 4]])
    assert plan.grid == grid


def test_stage_schedule():
    run = FrameFusion(0.3).start((2, 2, 2), 4, 7)
    assert run.next_stage() == Stage(0, needs_attention=False, position_rule="original", point="input")
    for calls, layer in ((1, 0), (2, 1), (3, 2)):
        run.calls = calls
        assert run.next_stage() == Stage(layer, position_rule="original", point="attention")
    run.calls = 4  # after layer 3 of 4: no layer left to see a reduction
    assert run.next_stage() is None
    run.calls, run.finish_merging = 2, True
    assert run.next_stage() == Stage(1, needs_attention=True, position_rule="original", point="attention")


def test_cost_bounds_and_messages():
    assert FrameFusion(1.0).cost == 1.0
    for cost in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"^FrameFusion cost must be in \(0, 1\], got {cost}$"):
            FrameFusion(cost)
    with pytest.raises(ValueError, match="^The cost is too small$"):
        pruning_ratio([0.0, 0.0], 0.1, 4)  # 2 layers at full cost exceed 4 * 0.1


def test_link_scores_keep_the_input_dtype():
    hidden = torch.tensor([[3.0, 4.0], [6.0, 8.0]], dtype=torch.bfloat16)
    scores, _ = link_scores(hidden, torch.tensor([0, 0]), 1)
    assert scores.dtype == torch.bfloat16 and scores.tolist() == [-2.0, 1.0]


def test_merge_links_keep_mask_is_bool():
    _, keep, _ = merge_links(torch.randn(3, 2), torch.tensor([0, 1, 2]), torch.tensor([2]))
    assert keep.dtype == torch.bool and keep.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("sparsities", "cost", "layers", "ratio"),
    [
        ([], 0.5, 4, 0.5),  # 1 - cost
        ([0.0], 0.25, 4, 1.0),  # remain = 4 * 0.25 - 1 = 0: everything pruned, no error
        ([0.5], 0.9, 4, 0),  # remain 3.1 over 3 * 0.5 = 1.5: above 1, nothing to prune
        ([0.5], 0.575, 4, 0),  # remain 1.8 over 1.5 = 1.2: above 1
        ([0.5], 0.5, 4, 0.0),  # remain 1.5 over 1.5 = 1 exactly
        ([0.5, 0.5], 0.25, 4, 0.5),  # s = 0.25, remain = 1 - 0.75 = 0.25 over 2 * 0.25 = 0.5
    ],
)
def test_pruning_ratio_by_hand(sparsities, cost, layers, ratio):
    assert pruning_ratio(sparsities, cost, layers) == pytest.approx(ratio, abs=1e-12)


def test_a_link_at_exactly_the_threshold_merges():
    # (2, 2, 1): position 0's frames have cosine 15 / (5 * 5) = 0.6 exactly, position 1's 0
    grid = (2, 2, 1)
    hidden = torch.tensor([[5.0, 0.0], [0.0, 1.0], [3.0, 4.0], [1.0, 0.0]])
    run = FrameFusion(0.5).start(grid, 4, 0)
    assert run.branch is None and run.sparsities == [] and run.calls == 0
    plan = run.run(hidden, grid, _context())
    assert run.sparsities == [0.25] and run.branch is None and plan.num_kept == 3
    assert plan.token_map.tolist() == [0, 1, 0, 2]


def test_prune_keeps_one_token_at_least():
    grid = (1, 1, 3)
    run = FrameFusion(0.25).start(grid, 4, 0)  # ratio 0.75: round(3 * 0.25) = 1 token
    run.finish_merging = True
    plan = run.run(torch.randn(3, 2), grid, _context(torch.tensor([0.2, 0.5, 0.1]), layer=1))
    assert plan.rep_index.tolist() == [1] and plan.token_map.tolist() == [0, 0, 0]


def test_later_merge_stages_use_the_original_positions():
    # (2, 1, 2): positions 0, 1, 0, 1; the first stage merges token 2 into token 0
    grid = (2, 1, 2)
    first = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])
    run = FrameFusion(0.5).start(grid, 4, 0)
    plan = run.run(first, grid, _context())
    assert plan.rep_index.tolist() == [0, 1, 3] and not run.finish_merging
    # the survivors are originals 0, 1, 3 (positions 0, 1, 1): now 1 and 3 are alike, 0 is not
    second = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.1]])
    context = AttentionContext(scores=None, layer=0, num_layers=4, tokens=plan)
    again = run.run(second, (1, 1, 3), context)
    assert again.num_kept == 2 and again.token_map.tolist() == [0, 1, 1]
