"""DyCoke stage 1's exact-budget counts (``per_frame_keep``), row reordering, defaults and argument
checks, hand-worked."""

from __future__ import annotations

import re

import pytest
import torch

from lmms_sttm.merging.dycoke import (
    DycokeStage1Reducer,
    dycoke_stage1,
    per_frame_keep,
    reference_frames,
    reorder,
)
from lmms_sttm.merging.groups import unit_rects
from lmms_sttm.merging.tome import tome_video


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_per_frame_keep_by_hand():
    # T = 8: frames 1, 2, 3, 5, 7 are pruned (references 0, 0, 2, 4, 6); 0, 4, 6 stay whole (3 * 4)
    assert reference_frames(8).tolist() == [-1, 0, 0, 2, -1, 4, -1, 6]
    # 20 - 12 = 8 over 5 pruned frames: 1 each and one more for the first three
    assert per_frame_keep(8, 4, 20).tolist() == [4, 2, 2, 2, 4, 1, 4, 1]
    assert per_frame_keep(8, 4, 16).tolist() == [4, 1, 1, 1, 4, 1, 4, 0]
    assert per_frame_keep(8, 4, 5).tolist() == [4, 0, 0, 0, 4, 0, 4, 0]  # below the whole frames
    assert per_frame_keep(8, 4, 100).tolist() == [4] * 8  # capped at every token
    assert per_frame_keep(1, 4, 2).tolist() == [4]  # no pruned frame
    assert per_frame_keep(3, 5, 12).tolist() == [5, 2, 5]  # T = 3: frame 1 pruned, 2 = T - 1 whole
    assert per_frame_keep(3, 5, 11).tolist() == [5, 1, 5]


def test_keep_reducer_spreads_the_budget():
    x = torch.randn(8 * 4, 6, generator=torch.Generator().manual_seed(1))
    plan = DycokeStage1Reducer(keep=0.5)(x, (8, 2, 2))  # round(0.5 * 32) = 16
    frames = torch.bincount(plan.rep_index // 4, minlength=8).tolist()
    assert frames == [4, 1, 1, 1, 4, 1, 4, 0] and plan.num_kept == 16
    tiny = DycokeStage1Reducer(keep=0.01)(x, (8, 2, 2))  # max(1, round(0.32)) = 1 -> whole frames only
    assert tiny.num_kept == 12


def test_default_order_is_the_authors_and_rows_carry_their_rectangles():
    x = torch.randn(4 * 9, 5, generator=torch.Generator().manual_seed(2))
    counts = torch.tensor([9, 3, 3, 3])
    default = dycoke_stage1(x, (4, 3, 3), counts)
    authors = dycoke_stage1(x, (4, 3, 3), counts, order="authors")
    raster = dycoke_stage1(x, (4, 3, 3), counts, order="raster")
    assert torch.equal(default.rep_index, authors.rep_index)
    assert not torch.equal(authors.rep_index, raster.rep_index)  # the case tells the orders apart
    assert sorted(authors.rep_index.tolist()) == raster.rep_index.tolist()
    assert torch.equal(authors.tlbr, unit_rects(authors.rep_index, (4, 3, 3)))
    assert torch.equal(authors.features, x[authors.rep_index])
    assert torch.equal(authors.token_map.index_select(0, authors.rep_index), torch.arange(authors.num_kept))


def test_reorder_permutes_every_row_field():
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(3))
    plan = tome_video(x, (1, 3, 4), prune=0.5)  # authors' order: position_index set
    order = torch.arange(plan.num_kept).flip(0)
    out = reorder(plan, order)
    assert torch.equal(out.features, plan.features.flip(0))
    assert torch.equal(out.tlbr, plan.tlbr.flip(0)) and torch.equal(out.rep_index, plan.rep_index.flip(0))
    assert torch.equal(out.position_index, plan.position_index.flip(0))
    assert torch.equal(out.num_patches, plan.num_patches.flip(0))
    assert torch.equal(out.token_map, plan.num_kept - 1 - plan.token_map)


def test_argument_checks():
    one_of = "DyCoke stage 1 needs exactly one of prune= or keep="
    for kwargs in ({}, {"prune": 0.5, "keep": 0.5}):
        with pytest.raises(ValueError, match=_exactly(one_of)):
            DycokeStage1Reducer(**kwargs)
    assert DycokeStage1Reducer(prune=0).prune == 0 and DycokeStage1Reducer(prune=1).prune == 1
    for prune in (-0.1, 1.5):
        with pytest.raises(ValueError, match=_exactly(f"DyCoke prune ratio must be in [0, 1], got {prune}")):
            DycokeStage1Reducer(prune=prune)
    assert DycokeStage1Reducer(keep=1).keep == 1
    for keep in (0, 1.5):
        with pytest.raises(ValueError, match=_exactly(f"DyCoke keep fraction must be in (0, 1], got {keep}")):
            DycokeStage1Reducer(keep=keep)
    bad = "DyCoke order 'zigzag' is not one of ['authors', 'raster']"
    with pytest.raises(ValueError, match=_exactly(bad)):
        DycokeStage1Reducer(prune=0.5, order="zigzag")
    with pytest.raises(ValueError, match=_exactly(bad)):
        dycoke_stage1(torch.zeros(8, 2), (2, 2, 2), torch.tensor([4, 2]), order="zigzag")
    assert DycokeStage1Reducer(prune=0.5).order == "authors"
