"""Token pickers: greedy argmax and seeded sampling with temperature, top-k and top-p."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine.sampling import greedy, sampler


def test_top_k_one_is_greedy_and_seed_is_reproducible():
    logits = torch.randn(20, 1, 50, generator=torch.Generator().manual_seed(0))
    top1 = sampler(temperature=0.7, top_k=1, seed=3)
    assert all(int(top1(x)) == int(greedy(x)) for x in logits)
    a, b = sampler(seed=11), sampler(seed=11)
    assert [int(a(x)) for x in logits] == [int(b(x)) for x in logits]
    c = sampler(seed=12)
    flat = torch.zeros(1, 50)
    assert [int(sampler(seed=11)(flat)) for _ in range(1)] == [int(sampler(seed=11)(flat))]
    assert len({int(c(flat)) for _ in range(40)}) > 5  # uniform logits: many different tokens


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    pick = sampler(top_p=0.7, seed=0)
    drawn = {int(pick(logits)) for _ in range(300)}
    assert drawn == {0, 1}  # 0.5 + 0.3 reaches 0.7; tokens 2 and 3 are cut
    low_t = sampler(temperature=1e-3, seed=0)
    assert {int(low_t(logits)) for _ in range(50)} == {0}


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}])
def test_bad_sampling_arguments(kwargs):
    with pytest.raises(ValueError):
        sampler(**kwargs)
