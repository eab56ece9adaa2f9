"""Decoding never picks the video placeholder (it cannot be fed back as a decode input)."""

from __future__ import annotations

import torch

from lmms_sttm.engine.sampling import greedy, sampler
from lmms_sttm.engine.session import never_placeholder


def test_placeholder_ranked_first_gives_the_next_choice_and_nothing_else_changes():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0]])
    assert int(never_placeholder(greedy, 1)(logits)) == 2
    assert torch.equal(logits, torch.tensor([[0.1, 3.0, 2.0, -1.0]]))  # the caller's logits untouched
    assert int(never_placeholder(greedy, 3)(logits)) == 1  # not first: the same answer
    assert never_placeholder(greedy, None) is greedy
    pick = never_placeholder(sampler(temperature=1.0, seed=0), 1)
    assert all(int(pick(logits)) != 1 for _ in range(50))


def test_decoding_runs_without_autograd_and_never_sees_the_placeholder_ranked():
    from lmms_sttm.engine import apply_reduction, session
    from tests.engine.engine_helpers import VIDEO, build_model, make_inputs, pair_merge_reducer, text_tokens

    model = build_model("llava_onevision")
    v = make_inputs("llava_onevision")
    engine = apply_reduction(model, layer=2)
    seen = []

    def pick(logits):
        seen.append((torch.is_grad_enabled(), float(logits[0, VIDEO])))
        return logits.argmax(-1, keepdim=True)

    try:
        prefix = session.prefill(engine, v.inputs, pair_merge_reducer, v.grid)
        session.answer(engine, prefix, text_tokens(3, seed=4), max_new_tokens=3, eos_token_id=None, pick=pick)
    finally:
        engine.remove()
    assert seen == [(False, float("-inf"))] * 3
