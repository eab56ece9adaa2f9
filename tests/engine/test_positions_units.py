"""First-chunk and reduced position ids on hand-worked inputs, with the exact error messages."""

from __future__ import annotations

import re

import pytest
import torch

from lmms_sttm.engine.positions import first_chunk_positions
from lmms_sttm.engine.span import VideoRows
from lmms_sttm.engine.splice import splice, spliced_positions
from lmms_sttm.merging.groups import from_groups


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_first_chunk_positions_of_both_modes():
    cpu = torch.device("cpu")
    assert first_chunk_positions("reassign", None, 4, cpu).tolist() == [[0, 1, 2, 3]]
    assert first_chunk_positions("reassign", torch.arange(4)[None], 4, cpu).tolist() == [[0, 1, 2, 3]]
    bad = "reduction engine: first-chunk position_ids must be 0..q-1 for 1-D RoPE models"
    with pytest.raises(ValueError, match=_exactly(bad)):
        first_chunk_positions("reassign", torch.tensor([[0, 1, 1, 2]]), 4, cpu)
    default = first_chunk_positions("survive", None, 3, cpu)
    assert default.shape == (3, 1, 3) and default.tolist() == [[[0, 1, 2]]] * 3
    default[0, 0, 0] = 7  # a copy, not a view of one row
    assert default[1, 0, 0] == 0
    flat = first_chunk_positions("survive", torch.tensor([[5, 6, 7]]), 3, cpu)
    assert flat.shape == (3, 1, 3) and flat.tolist() == [[[5, 6, 7]]] * 3
    rows = torch.arange(12).view(4, 1, 3)  # generate's [4, 1, q]: the text row first
    assert torch.equal(first_chunk_positions("survive", rows, 3, cpu), rows[1:])
    assert torch.equal(first_chunk_positions("survive", rows[1:], 3, cpu), rows[1:])
    with pytest.raises(
        ValueError, match=_exactly("reduction engine: unexpected M-RoPE position_ids shape (2, 1, 3)")
    ):
        first_chunk_positions("survive", rows[:2], 3, cpu)


def _after(rule, previous, start, plan):
    video = VideoRows.run(start, plan.token_map.numel())
    return spliced_positions(rule, previous, video, plan, splice(previous.shape[-1], video, plan))


def test_spliced_positions_by_hand():
    plan = from_groups(torch.randn(4, 2), torch.tensor([0, 0, 2, 2]), (1, 2, 2))  # 4 span tokens -> 2
    previous = torch.tensor([[0, 1, 2, 3, 4, 5, 6]])  # [pre, span (1..4), post 5, 6]
    assert _after("renumber", previous, 1, plan).tolist() == [[0, 1, 2, 3, 4]]
    assert _after("original", previous, 1, plan).tolist() == [[0, 1, 3, 5, 6]]
    mrope = torch.stack([previous, previous + 100, previous + 200])  # [3, 1, 7]
    kept = _after("original", mrope, 1, plan)
    assert kept.shape == (3, 1, 5) and kept[:, 0, 2].tolist() == [3, 103, 203]
    with pytest.raises(ValueError, match=_exactly("renumbered positions need 1-D RoPE positions [1, q]")):
        _after("renumber", mrope, 1, plan)
    with pytest.raises(ValueError, match=_exactly("unknown position rule 'shuffle'")):
        _after("shuffle", previous, 1, plan)
