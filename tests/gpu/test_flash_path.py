"""The flash-attention 2 path of all three families, on the CPU through a pure-torch stand-in.

The stand-in (``tests/gpu/flash_standin.py``) is first checked against sdpa with explicit masks;
then each tiny model runs with ``flash_attention_2`` in its text decoder (transformers' own flash
code path around the stand-in) and must equal the sdpa model: the reduced prefix, questions of 1
and 9 tokens reusing it, and 8 decode steps each, at merge layers 0 and 2. Our position ids must
never send transformers to the packed-sequence (varlen) path.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lmms_sttm.engine import answer, apply_reduction, prefill
from tests.engine.engine_helpers import FAMILIES, build_model, make_inputs, pair_merge_reducer, text_tokens
from tests.gpu import flash_standin

QUESTIONS = (1, 9)
DECODE_STEPS = 8


@pytest.fixture
def flash_calls(monkeypatch):
    return flash_standin.install(monkeypatch)


def _sdpa_reference(q, k, v, mask):
    """``[B, S, H, D]`` inputs through torch's sdpa with an explicit bool mask ``[Sq, Sk]``."""
    k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
    v = v.repeat_interleave(q.shape[2] // v.shape[2], dim=2)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    )
    return out.transpose(1, 2)


def test_stand_in_is_bottom_right_causal_attention_with_gqa(flash_calls):
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, s, h, 8, generator=gen) for s, h in ((3, 4), (7, 2), (7, 2)))
    bottom_right = torch.ones(3, 7, dtype=torch.bool).tril(diagonal=7 - 3)
    out = flash_standin.flash_attn_func(q, k, v, causal=True)
    torch.testing.assert_close(out, _sdpa_reference(q, k, v, bottom_right), atol=1e-6, rtol=0)
    full = flash_standin.flash_attn_func(q, k, v, causal=False)
    torch.testing.assert_close(full, _sdpa_reference(q, k, v, None), atol=1e-6, rtol=0)
    # varlen: two packed sequences equal two separate calls
    cu_q, cu_k = torch.tensor([0, 3, 6], dtype=torch.int32), torch.tensor([0, 7, 14], dtype=torch.int32)
    packed = flash_standin.flash_attn_varlen_func(
        q.reshape(6, 4, 8), k.reshape(14, 2, 8), v.reshape(14, 2, 8), cu_q, cu_k, 3, 7, causal=True
    )
    torch.testing.assert_close(packed, out.reshape(6, 4, 8), atol=1e-6, rtol=0)


def _run(model, layer: int, video) -> tuple[torch.Tensor, list]:
    """Reduced prefix, then each question with ``DECODE_STEPS`` decode steps: logits of every step."""
    engine = apply_reduction(model, layer)
    try:
        prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
        runs = []
        for n in QUESTIONS:
            steps: list[torch.Tensor] = []

            def pick(logits, steps=steps):
                steps.append(logits)
                return logits.argmax(-1, keepdim=True)

            ans = answer(
                engine, prefix, text_tokens(n, seed=20 + n), max_new_tokens=1 + DECODE_STEPS, pick=pick
            )
            assert ans.stats.prefix_reused == (n != QUESTIONS[0])
            runs.append((ans.tokens, steps))
        return prefix.last_logits, runs
    finally:
        engine.remove()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [0, 2])
def test_flash_attention_2_equals_sdpa(flash_calls, family, layer):
    sdpa, flash = build_model(family), build_model(family)
    flash.config.get_text_config()._attn_implementation = "flash_attention_2"
    video = make_inputs(family)
    ref_last, ref_runs = _run(sdpa, layer, video)
    assert flash_calls["flash"] == 0
    last, runs = _run(flash, layer, video)
    torch.testing.assert_close(last, ref_last, atol=1e-5, rtol=0)
    for (tokens, steps), (ref_tokens, ref_steps) in zip(runs, ref_runs, strict=True):
        assert len(steps) == 1 + DECODE_STEPS
        assert torch.equal(tokens, ref_tokens)
        for got, want in zip(steps, ref_steps, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    layers = flash.config.get_text_config().num_hidden_layers
    assert flash_calls["flash"] == layers * (1 + sum(1 + DECODE_STEPS for _ in QUESTIONS))
    assert flash_calls["varlen"] == 0  # our position ids never look like packed sequences
