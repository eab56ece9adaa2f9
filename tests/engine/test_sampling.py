"""Token pickers: greedy argmax and seeded sampling with temperature, top-k and top-p."""

from __future__ import annotations

import math

import pytest
import torch

from lmms_sttm.engine.sampling import greedy, sampler


def test_top_k_one_is_greedy_and_seed_is_reproducible():
    logits = torch.randn(20, 1, 50, generator=torch.Generator().manual_seed(0))
    top1 = sampler(temperature=0.7, top_k=1, seed=3)
    assert all(int(top1(x)) == int(greedy(x)) for x in logits)
    flat = torch.zeros(1, 50)
    c = sampler(seed=12)
    assert len({int(c(flat)) for _ in range(40)}) > 5  # uniform logits: many different tokens


def _hand_probs(logits: list[float], temperature: float, top_k: int, top_p: float) -> list[float]:
    """The picker's distribution written out: softmax(logits / T) over the k largest, then the
    smallest most-probable prefix whose mass reaches top_p, renormalised (plain Python floats)."""
    scaled = [v / temperature for v in logits]
    order = sorted(range(len(scaled)), key=lambda i: -scaled[i])
    allowed = order[:top_k] if top_k else order
    z = sum(math.exp(scaled[i]) for i in allowed)
    mass, nucleus = 0.0, []
    for i in allowed:
        if mass >= top_p:
            break
        nucleus.append(i)
        mass += math.exp(scaled[i]) / z
    z2 = sum(math.exp(scaled[i]) for i in nucleus)
    return [math.exp(scaled[i]) / z2 if i in nucleus else 0.0 for i in range(len(scaled))]


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(0.7, 3, 1.0), (1.3, 4, 0.8), (1.0, 0, 0.9), (0.5, 2, 1.0)]
)
def test_draws_follow_the_hand_computed_distribution(temperature, top_k, top_p):
    """top_k > 1 with temperature and top_p: the tokens drawn are those of torch.multinomial on the
    hand-computed probabilities with a generator of the same seed, and only allowed tokens occur."""
    values = [2.0, 1.6, 1.5, 0.3, -0.2, 1.55, -1.0, 0.9]
    probs = _hand_probs(values, temperature, top_k, top_p)
    allowed = {i for i, p in enumerate(probs) if p > 0}
    assert 1 < len(allowed) < len(values)
    logits = torch.tensor([values])
    pick = sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=7)
    drawn = [int(pick(logits)) for _ in range(400)]
    gen = torch.Generator().manual_seed(7)
    expected = [int(torch.multinomial(torch.tensor([probs]), 1, generator=gen)) for _ in range(400)]
    assert drawn == expected
    assert set(drawn) == allowed
    # a new picker with the same seed repeats the draws; another seed does not
    again = sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=7)
    assert [int(again(logits)) for _ in range(400)] == drawn
    other = sampler(temperature=temperature, top_k=top_k, top_p=top_p, seed=8)
    assert [int(other(logits)) for _ in range(400)] != drawn
    # frequencies near the hand probabilities (400 draws: 4 standard deviations)
    for i, p in enumerate(probs):
        assert abs(drawn.count(i) / 400 - p) <= 4 * math.sqrt(p * (1 - p) / 400) + 1e-9


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
