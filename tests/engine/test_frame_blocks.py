"""The frame-block families (Qwen3-VL dense and MoE with DeepStack, InternVL3.5) in the engine.

Identity reduction equals the stock model (logits and ``generate`` tokens); STTM and FastV at
several layers equal the unpatched decoder run by hand (``conformance.by_hand``: plain loops, each
block keeping its kept tokens in place, DeepStack added after its layers and carried through the
plan); prefix reuse equals a fresh prefill; a block emptied by the plan keeps its text; the one
attention-score function equals the stock model's eager attention weights on every family."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.api import from_keep_mask
from lmms_sttm.conformance.by_hand import prompt_logits_by_hand, video_blocks
from lmms_sttm.conformance.tiny import BLOCKS, FAMILIES, build_model, make_inputs, text_tokens
from lmms_sttm.engine import answer, apply_reduction, generate, identity_reducer, prefill
from lmms_sttm.engine.families import family_of
from lmms_sttm.engine.hybrid import FULL, attention_layer_from, layer_kinds
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.merging.sttm import SttmReducer

_MODELS: dict = {}


def _model(family: str, attn: str = "sdpa"):
    if (family, attn) not in _MODELS:
        _MODELS[(family, attn)] = build_model(family, attn, layers=5, large=True)
    return _MODELS[(family, attn)]


def engine_text(model):
    return family_of(model).text_model(model)


def _by_hand(model, video, method, layer):
    return prompt_logits_by_hand(model, video.inputs, video.grid, method, layer)


@pytest.mark.parametrize("family", BLOCKS)
def test_identity_equals_the_stock_model(engines, family):
    model, video = _model(family), make_inputs(family, large=True)
    with torch.no_grad():
        stock = model(**video.inputs).logits[:, -1]
        tokens = model.generate(**video.inputs, max_new_tokens=4, do_sample=False)[
            0, video.input_ids.shape[1] :
        ]
    for layer in (0, 2, 4):
        engines.append(engine := apply_reduction(model, layer))
        prefix = prefill(engine, video.inputs, identity_reducer, video.grid, whole_prompt=True)
        torch.testing.assert_close(prefix.last_logits, stock, atol=1e-5, rtol=0)
        got = generate(engine, video.inputs, identity_reducer, video.grid, max_new_tokens=4)
        assert got.tokens.tolist() == tokens.tolist()
        engine.remove()


@pytest.mark.parametrize("family", BLOCKS)
@pytest.mark.parametrize("layer", [0, 2, 4])
def test_sttm_equals_by_hand_with_deepstack(engines, family, layer):
    model, video = _model(family), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    expected = _by_hand(model, video, reducer, layer)[:, -1]
    engines.append(engine := apply_reduction(model, layer))
    with torch.no_grad(), engine.video(video.grid, reducer):
        patched = model(**video.inputs).logits[:, -1]
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    record = engine.last_reduction
    assert 0 < record.visual_tokens_kept < record.visual_tokens
    rows = record.video_rows
    assert rows.numel() == record.visual_tokens_kept and bool((rows[1:] > rows[:-1]).all())


@pytest.mark.parametrize("family", ["qwen3_vl", "internvl", "qwen3_5"])
@pytest.mark.parametrize("layer", [2, 4])
def test_fastv_equals_by_hand(engines, family, layer):
    model, video = _model(family, "eager"), make_inputs(family, large=True)
    reducer = FastVReducer(0.3)
    expected = _by_hand(model, video, reducer, layer)[:, -1]
    engines.append(engine := apply_reduction(model, layer))
    with torch.no_grad(), engine.video(video.grid, reducer):
        patched = model(**video.inputs).logits[:, -1]
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)


class DropBlock:
    """Keeps every token except those of grid frame 1 (its block empties)."""

    def __call__(self, hidden, grid):
        t, h, w = grid
        keep = torch.ones(t * h * w, dtype=torch.bool)
        keep[h * w : 2 * h * w] = False
        return from_keep_mask(hidden, keep, grid)


@pytest.mark.parametrize("family", ["qwen3_vl", "internvl", "qwen3_5", "qwen3_5_moe"])
def test_an_emptied_block_keeps_its_text(engines, family):
    model, video = _model(family), make_inputs(family, large=True)
    expected = _by_hand(model, video, DropBlock(), 2)[:, -1]
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, DropBlock(), video.grid, whole_prompt=True)
    torch.testing.assert_close(prefix.last_logits, expected, atol=1e-5, rtol=0)
    t, h, w = video.grid
    assert prefix.visual_tokens_kept == (t - 1) * h * w
    assert prefix.reduced_length == video.input_ids.shape[1] - h * w


@pytest.mark.parametrize("family", BLOCKS)
@pytest.mark.parametrize("length", [1, 23])
def test_prefix_reuse_equals_a_fresh_prefill(engines, family, length):
    model, video = _model(family), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, reducer, video.grid)
    question = text_tokens(length, seed=7)
    full = video.extended(question)
    fresh = prefill(engine, full.inputs, reducer, full.grid, whole_prompt=True)
    reused = answer(engine, prefix, question, max_new_tokens=3)
    torch.testing.assert_close(reused.first_logits, fresh.last_logits, atol=1e-5, rtol=0)
    again = answer(engine, prefix, question, max_new_tokens=3)  # the prefix is never advanced
    assert again.tokens.tolist() == reused.tokens.tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_equal_the_stock_eager_attention(engines, family):
    """The engine's score function (q/k norms, the model's rotary, GQA, Qwen3.5's gated query and
    partial rotary) equals the eager weights of the stock model, last row, mean over heads, at the
    video tokens, on every family. A stage at layer 2 reads layer 1, or on a hybrid the first
    full-attention layer from 1 on (stock ``attentions`` hold the full-attention layers only)."""
    model, video = _model(family, "eager"), make_inputs(family, large=True)
    with torch.no_grad():
        out = model(**video.inputs, output_attentions=True, use_cache=False)
    fam = family_of(model)
    rows, _ = video_blocks(video.input_ids, fam.video_token_id(model))
    n = video.grid[0] * video.grid[1] * video.grid[2]
    rows = rows[:n]
    kinds = layer_kinds(engine_text(model))
    read = attention_layer_from(kinds, 1)
    reference = out.attentions[[i for i, k in enumerate(kinds) if k == FULL].index(read)]
    reference = reference[0, :, -1][:, rows].mean(0)

    class Keep:
        needs_attention = True
        scores = None

        def __call__(self, hidden, grid, context=None):
            Keep.scores = context.scores
            return identity_reducer(hidden, grid)

    engines.append(engine := apply_reduction(model, 2))
    with torch.no_grad(), engine.video(video.grid, Keep()):
        model(**video.inputs)
    torch.testing.assert_close(Keep.scores, reference, atol=1e-6, rtol=1e-5)
