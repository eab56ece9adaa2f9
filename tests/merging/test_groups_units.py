"""The plan builders of ``merging/groups.py`` on hand-worked inputs: rectangles, means with empty
groups, pruning parents and their errors, and the merge of kept tokens (dtype, representative's
rectangle)."""

from __future__ import annotations

import re

import pytest
import torch

from lmms_sttm.merging.groups import (
    from_groups,
    from_keep,
    group_mean,
    merge_kept,
    previous_kept_parent,
    unit_rects,
)


def test_unit_rects_by_hand():
    rects = unit_rects(torch.tensor([0, 5, 7]), (2, 2, 3))  # 6 tokens per frame, rows of 3
    assert rects.dtype == torch.long
    assert rects.tolist() == [[0, 0, 0, 1, 1], [0, 1, 2, 2, 3], [1, 0, 1, 1, 2]]


def test_group_mean_leaves_empty_groups_at_zero():
    hidden = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    out = group_mean(hidden, torch.tensor([1, 1, 0]), 3)  # group 2 has no member
    assert out.tolist() == [[5.0, 9.0], [2.0, 3.0], [0.0, 0.0]]
    half = group_mean(hidden.to(torch.bfloat16), torch.tensor([0, 0, 1]), 2)
    assert half.dtype == torch.bfloat16 and half.float().tolist() == [[2.0, 3.0], [5.0, 9.0]]


def test_from_groups_by_hand():
    hidden = torch.tensor([[0.0], [2.0], [4.0], [8.0]])
    plan = from_groups(hidden, torch.tensor([3, 1, 3, 1]), (1, 2, 2))
    assert plan.rep_index.tolist() == [0, 1] and plan.token_map.tolist() == [0, 1, 0, 1]
    assert plan.features[:, 0].tolist() == [2.0, 5.0] and plan.num_patches.tolist() == [2, 2]
    assert plan.tlbr.tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 2]]


def test_previous_kept_parent_by_hand():
    keep = torch.tensor([False, False, True, False, True, False])
    # before the first kept token: the first kept one (2), not the second (4)
    assert previous_kept_parent(keep).tolist() == [2, 2, 2, 2, 4, 4]
    keep0 = torch.tensor([True, False, False, True, False])
    assert previous_kept_parent(keep0).tolist() == [0, 0, 0, 3, 3]


def test_from_keep_by_hand_and_errors():
    hidden = torch.arange(10.0).view(5, 2)
    keep = torch.tensor([False, True, False, True, False])
    plan = from_keep(hidden, keep, torch.tensor([1, 1, 3, 3, 2]), (1, 1, 5))  # 4 -> 2 -> 3
    assert plan.rep_index.tolist() == [1, 3] and plan.token_map.tolist() == [0, 0, 1, 1, 1]
    assert plan.num_patches.tolist() == [2, 3] and torch.equal(plan.features, hidden[[1, 3]])
    with pytest.raises(ValueError, match="^a pruning plan must keep at least one token$"):
        from_keep(hidden, torch.zeros(5, dtype=torch.bool), torch.arange(5), (1, 1, 5))
    with pytest.raises(ValueError, match=re.escape("pruning parents must resolve to kept tokens") + "$"):
        from_keep(hidden, keep, torch.tensor([0, 1, 3, 3, 4]), (1, 1, 5))  # 0 and 4 are their own roots


def test_merge_kept_keeps_the_dtype_and_the_representative_rectangle():
    hidden = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    plan = from_groups(hidden, torch.arange(6), (1, 2, 3))
    out = merge_kept(plan, torch.tensor([1, 0, 1, 0, 2, 2]))  # {0, 2}, {1, 3}, {4, 5}
    assert out.features.dtype == torch.bfloat16
    assert out.rep_index.tolist() == [0, 1, 4]
    assert out.tlbr.tolist() == unit_rects(torch.tensor([0, 1, 4]), (1, 2, 3)).tolist()
    # a plan whose rectangles are not the representatives' 1x1 cells: the member's own is kept
    wide = from_groups(hidden, torch.arange(6), (1, 2, 3), tlbr=torch.arange(30).view(6, 5))
    assert merge_kept(wide, torch.tensor([0, 0, 1, 1, 1, 2])).tlbr[:, 0].tolist() == [0, 10, 25]
