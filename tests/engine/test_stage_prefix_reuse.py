"""Prefix reuse after attention-point stages (reductions inside layers 0 and 1, after their
attention, as FrameFusion merges): a question answered on a reused prefix gives the first-token and
decode-step logits of the whole prompt run by hand through the same stages, and the cache
lengths per layer come out as the stages' counts say."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.engine.sampling import greedy
from tests.engine.engine_helpers import (
    FAMILIES,
    decoder_inputs,
    make_inputs,
    pair_merge_reducer,
    staged_logits_by_hand,
    text_tokens,
)
from tests.engine.test_stages import DEFAULT_RULE, ThreeStages, pairs

STEPS = 2


def _recording():
    seen = []

    def pick(logits):
        seen.append(logits.detach().clone())
        return greedy(logits)

    return pick, seen


@pytest.mark.parametrize("family", FAMILIES)
def test_reused_prefix_after_attention_point_stages_equals_by_hand(tiny, engines, family):
    model, video = tiny(family), make_inputs(family)
    rule = DEFAULT_RULE[family]
    method = ThreeStages(layers=(0, 1, 3), points=("attention", "attention", "input"))
    stages = [(0, pair_merge_reducer, rule, "attention"), (1, pairs, rule, "attention"), (3, pairs, rule)]
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, method, video.grid)
    t, h, w = video.grid
    n, q = t * h * w, video.input_ids.shape[1]
    first = pair_merge_reducer(torch.randn(n, 4), video.grid).num_kept
    second, third = (first + 1) // 2, ((first + 1) // 2 + 1) // 2
    # layer 0 attended over all tokens, layers 1-2 over the first stage's, layer 3 over the last
    lengths = [layer.get_seq_length() for layer in prefix.cache.layers]
    assert lengths == [q, q - n + first, q - n + second, q - n + third]
    answer(engine, prefix, text_tokens(3, seed=8), max_new_tokens=1)  # a first question on the prefix
    question = text_tokens(6, seed=5)
    pick, seen = _recording()
    result = answer(engine, prefix, question, max_new_tokens=STEPS, pick=pick)
    assert result.stats.prefix_reused and len(seen) == STEPS
    asked = video.extended(question)
    for step in range(STEPS):
        embeds, positions = decoder_inputs(model, asked.extended(result.tokens[:step]).inputs)
        expected = staged_logits_by_hand(
            model, embeds, positions, stages, video.grid, video.span_start, tail=step
        )[:, -1]
        if step == 0:
            torch.testing.assert_close(result.first_logits, expected, atol=1e-5, rtol=0)
        # the picker sees the placeholder ids (video, image) masked to -inf: compare the rest
        finite = torch.isfinite(seen[step])
        assert int((~finite).sum()) <= 3
        torch.testing.assert_close(seen[step][finite], expected[finite], atol=1e-5, rtol=0)
    # the prefix cache itself is untouched by the questions
    assert [layer.get_seq_length() for layer in prefix.cache.layers] == lengths
