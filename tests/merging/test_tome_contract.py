"""ToMe's edge counts (target 1 and target N), tie order and argument checks, hand-worked."""

from __future__ import annotations

import re

import pytest
import torch

from lmms_sttm.merging.tome import TomeReducer, authors_rounds, bipartite_assign, tome_video


def _exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def _x(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def test_keeping_every_token_keeps_the_raster_order():
    x = _x(12)
    for plan in (TomeReducer(keep=1.0)(x, (1, 3, 4)), TomeReducer(prune=0.0)(x, (1, 3, 4))):
        assert plan.rep_index.tolist() == list(range(12)) and plan.position_index.tolist() == list(range(12))
    label, dest = authors_rounds(x, 12)
    assert label.tolist() == list(range(12)) and dest.tolist() == list(range(12))
    assert bipartite_assign(x, torch.ones(12, dtype=torch.long), 12).tolist() == list(range(12))


def test_down_to_one_token():
    x = _x(9, seed=1)
    for order in ("authors", "raster"):
        plan = tome_video(x, (1, 3, 3), keep=0.01, order=order)  # ceil(0.09) = 1
        assert plan.num_kept == 1 and plan.num_patches.tolist() == [9]
        torch.testing.assert_close(plan.features[0], x.mean(0))
    assert authors_rounds(x, 1)[0].tolist() == [0] * 9
    assert bipartite_assign(x, torch.ones(9, dtype=torch.long), 1).tolist() == [0] * 9


def test_equal_scores_keep_the_lower_a_position_first():
    # 40 identical tokens: every A token's best similarity is 1; the first r A positions merge
    x = torch.ones(40, 3)
    label, dest = authors_rounds(x, 30)  # r = 10: A positions 0..9 (tokens 0, 2, ..., 18) -> B token 1
    merged = [i for i in range(0, 40, 2) if int(label[i]) == int(label[1])]
    assert merged == list(range(0, 20, 2))
    # rows: the 10 unmerged A tokens (20, 22, ..., 38) in position order, then the 20 B tokens
    assert dest.tolist() == list(range(20, 40, 2)) + list(range(1, 40, 2))


def test_argument_checks():
    for kwargs in ({}, {"keep": 0.5, "prune": 0.5}):
        with pytest.raises(ValueError, match=_exactly("ToMe needs exactly one of keep= or prune=")):
            TomeReducer(**kwargs)
        with pytest.raises(ValueError, match=_exactly("ToMe needs exactly one of keep= or prune=")):
            tome_video(_x(4), (1, 2, 2), **kwargs)
    for keep in (0, 1.5):
        with pytest.raises(ValueError, match=_exactly(f"ToMe keep fraction must be in (0, 1], got {keep}")):
            TomeReducer(keep=keep)
    for prune in (1, -0.1):
        with pytest.raises(ValueError, match=_exactly(f"ToMe prune ratio must be in [0, 1), got {prune}")):
            TomeReducer(prune=prune)
    bad = "ToMe order 'zigzag' is not one of ['authors', 'raster']"
    with pytest.raises(ValueError, match=_exactly(bad)):
        TomeReducer(keep=0.5, order="zigzag")
    with pytest.raises(ValueError, match=_exactly(bad)):
        tome_video(_x(4), (1, 2, 2), keep=0.5, order="zigzag")
    for target in (0, 5):
        with pytest.raises(ValueError, match=_exactly(f"ToMe target {target} outside [1, 4]")):
            authors_rounds(_x(4), target)
        with pytest.raises(ValueError, match=_exactly(f"ToMe target {target} outside [1, 4]")):
            bipartite_assign(_x(4), torch.ones(4, dtype=torch.long), target)
