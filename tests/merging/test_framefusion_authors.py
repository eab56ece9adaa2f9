"""FrameFusion as the STTM authors ran it: hand-worked merge-to-budget and multi-layer branches."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.stages import compose
from lmms_sttm.merging.framefusion_authors import FrameFusion, link_scores, merge_links, pruning_ratio

# 3 frames of 1 x 2 positions, C = 2, raster order t*2 + p:
# p0: [1, 0] -> [1, .1] -> [1, .2] (alike); p1: [0, 1] -> [.2, 1] (alike) -> [1, -.5] (not)
FRAMES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.2, 1.0], [1.0, 0.2], [1.0, -0.5]])
GRID = (3, 1, 2)


def _context(scores=None, tokens=None, num_layers=4):
    return AttentionContext(scores, 0, num_layers, tokens=tokens)


def test_pruning_ratio_by_hand():
    assert pruning_ratio([], 0.5, 4) == pytest.approx(0.5)  # remain 2 of 4 layers
    # s = 5/6, 5/6: total 5/3, remain 2 - 5/3 = 1/3 over (4 - 2) * 5/6 -> 1 - 0.2
    assert pruning_ratio([1 / 6, 0.0], 0.5, 4) == pytest.approx(0.8)
    assert pruning_ratio([], 1.0, 4) == 0
    with pytest.raises(ValueError, match="cost is too small"):
        pruning_ratio([0.0, 0.0, 0.0], 0.1, 4)


def test_link_scores_and_chain_mean():
    scores, order = link_scores(FRAMES, torch.arange(6) % 2, 2)
    assert order.tolist() == [0, 2, 4, 1, 3, 5]  # by position, then sequence
    assert scores[0] == -2 and scores[3] == -2  # no link into the first slot / across positions
    assert scores[1] > 0.99 and scores[2] > 0.99 and scores[4] > 0.97 and scores[5] < 0
    merged, keep, root = merge_links(FRAMES, order, torch.tensor([1, 2, 4]))
    assert keep.tolist() == [True, True, False, False, False, True]
    assert root.tolist() == [0, 1, 0, 1, 0, 5]
    torch.testing.assert_close(merged[0], (FRAMES[0] + FRAMES[2] + FRAMES[4]) / 3)  # plain mean of the run
    torch.testing.assert_close(merged[1], (FRAMES[1] + FRAMES[3]) / 2)


def test_merge_to_budget_branch():
    """3 of 6 slots qualify: share 0.5 reaches the bound 0.5 (cost 0.5, 4 layers), so the
    int(0.5 * 6) = 3 most similar links merge, to the budget, and nothing is pruned."""
    run = FrameFusion(0.5).start(GRID, 4, 2)
    stage = run.next_stage()
    assert (stage.layer, stage.point, stage.needs_attention) == (0, "input", False)
    plan = run.run(FRAMES, GRID, _context())
    assert plan.num_kept == 3 and run.branch == "budget"
    assert plan.rep_index.tolist() == [0, 1, 5]
    assert plan.token_map.tolist() == [0, 1, 0, 1, 0, 2]
    torch.testing.assert_close(plan.features, torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, -0.5]]))
    assert run.next_stage() is None  # merged to the budget: never pruned


def test_multi_layer_branch_then_prune():
    """Call 0 (input embeddings): 2 of 6 links qualify (1/3 < 0.5, >= 0.1): merge them, go on.
    Call 1 (after layer 0's attention): none qualifies: stop merging. Call 2 (after layer 1's
    attention): prune to round(4 * (1 - 0.5)) = 2 tokens by layer 1's last-query attention
    (ratio: s = 2/3, 2/3; remain 2 - 4/3 over 2 * 2/3 -> 0.5)."""
    frames = FRAMES.clone()
    frames[4] = torch.tensor([-1.0, 0.3])  # p0 chain broken after frame 1
    run = FrameFusion(0.5).start(GRID, 4, 2)
    run.next_stage()
    first = run.run(frames, GRID, _context())
    # qualifying links: p0 frames 0-1 and p1 frames 0-1 (frame 2 unlike at both) -> share 2/6
    assert run.sparsities == [pytest.approx(2 / 6)] and not run.finish_merging
    assert first.rep_index.tolist() == [0, 1, 4, 5]
    stage = run.next_stage()
    assert (stage.layer, stage.point, stage.needs_attention) == (0, "attention", False)
    # after layer 0: the four tokens are pairwise unlike at each position
    later = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1], [0.1, -1.0]])
    second = run.run(later, (1, 1, 4), _context(tokens=first))
    assert second.num_kept == 4 and run.finish_merging and run.sparsities[1] == 0.0
    stage = run.next_stage()
    assert (stage.layer, stage.point, stage.needs_attention) == (1, "attention", True)
    assert pruning_ratio([2 / 6, 0.0], 0.5, 4) == pytest.approx(0.5)
    scores = torch.tensor([0.1, 0.4, 0.3, 0.2])
    third = run.run(later, (1, 1, 4), _context(scores=scores, tokens=compose(first, second)))
    assert third.num_kept == 2 and third.rep_index.tolist() == [1, 2]  # the top two, in order
    assert run.next_stage() is None and run.branch == "prune"
    total = compose(compose(first, second), third)
    assert total.rep_index.tolist() == [1, 4] and int(total.num_patches.sum()) == 6
