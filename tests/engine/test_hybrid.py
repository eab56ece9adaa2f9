"""Hybrid decoders (Qwen3.5 dense and MoE, 8 layers: Gated DeltaNet with full attention at 3 and 7).

Identity reduction equals the stock model; STTM on a layer's input at k = 0, at a Gated DeltaNet
layer and at a full-attention layer equals the unpatched decoder run by hand (layer by layer, each
linear layer absorbing the current sequence from a zero state, survivors at their own M-RoPE ids);
a question answered from the reduced prefix equals a fresh prefill of prefix + question whatever
the order and however often questions are asked (the prefix's recurrent states are snapshots);
stages reading attention move to the nearest full-attention layer.
"""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.conformance.by_hand import prompt_logits_by_hand
from lmms_sttm.conformance.tiny import HYBRID, build_model, make_inputs, text_tokens
from lmms_sttm.engine import answer, apply_reduction, generate, identity_reducer, prefill
from lmms_sttm.engine.families import family_of
from lmms_sttm.engine.hybrid import attention_layer_from, hybrid_stage, layer_kinds
from lmms_sttm.engine.segmented_cache import is_recurrent
from lmms_sttm.merging.fastv import FastVReducer
from lmms_sttm.merging.stage import Stage
from lmms_sttm.merging.sttm import SttmReducer

_MODELS: dict = {}
KINDS = ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"]


def _model(family: str, attn: str = "sdpa"):
    if (family, attn) not in _MODELS:
        _MODELS[(family, attn)] = build_model(family, attn, layers=8, large=True)
    return _MODELS[(family, attn)]


def _by_hand(model, video, method, layer):
    return prompt_logits_by_hand(model, video.inputs, video.grid, method, layer)


def test_the_tiny_hybrids_have_both_layer_kinds():
    for family in HYBRID:
        text = family_of(_model(family)).text_model(_model(family))
        assert layer_kinds(text) == KINDS
        assert hasattr(text.layers[0], "linear_attn") and hasattr(text.layers[3], "self_attn")


@pytest.mark.parametrize("family", HYBRID)
def test_identity_equals_the_stock_model(engines, family):
    model, video = _model(family), make_inputs(family, large=True)
    with torch.no_grad():
        stock = model(**video.inputs).logits[:, -1]
        tokens = model.generate(**video.inputs, max_new_tokens=4, do_sample=False)[
            0, video.input_ids.shape[1] :
        ]
    for layer in (0, 2, 3, 5):
        engines.append(engine := apply_reduction(model, layer))
        prefix = prefill(engine, video.inputs, identity_reducer, video.grid, whole_prompt=True)
        torch.testing.assert_close(prefix.last_logits, stock, atol=1e-5, rtol=0)
        got = generate(engine, video.inputs, identity_reducer, video.grid, max_new_tokens=4)
        assert got.tokens.tolist() == tokens.tolist()
        engine.remove()


@pytest.mark.parametrize("family", HYBRID)
@pytest.mark.parametrize("layer", [0, 2, 3, 4])  # k = 0; DeltaNet layers 2 and 4; full attention 3
def test_sttm_equals_by_hand(engines, family, layer):
    model, video = _model(family), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    expected = _by_hand(model, video, reducer, layer)[:, -1]
    engines.append(engine := apply_reduction(model, layer))
    with torch.no_grad(), engine.video(video.grid, reducer):
        patched = model(**video.inputs).logits[:, -1]
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    record = engine.last_reduction
    assert 0 < record.visual_tokens_kept < record.visual_tokens


@pytest.mark.parametrize("family", HYBRID)
@pytest.mark.parametrize("layer", [0, 3])
def test_prefix_reuse_equals_a_fresh_prefill_in_any_order(engines, family, layer):
    model, video = _model(family), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    engines.append(engine := apply_reduction(model, layer))
    prefix = prefill(engine, video.inputs, reducer, video.grid)
    states = _recurrent_states(prefix.cache)
    questions = {n: text_tokens(n, seed=7 + n) for n in (1, 23)}
    fresh = {}
    for n, question in questions.items():
        full = video.extended(question)
        fresh[n] = prefill(engine, full.inputs, reducer, full.grid, whole_prompt=True).last_logits
    for order in ([1, 23, 1, 23], [23, 1, 23, 1]):
        for n in order:
            got = answer(engine, prefix, questions[n], max_new_tokens=3)
            torch.testing.assert_close(got.first_logits, fresh[n], atol=1e-5, rtol=0)
    for before, after in zip(states, _recurrent_states(prefix.cache), strict=True):
        assert torch.equal(before, after)  # the prefix's snapshot was never advanced


def _recurrent_states(cache) -> list[torch.Tensor]:
    out = []
    for layer in cache.layers:
        if is_recurrent(layer):
            out += [layer.conv_states[0].clone(), layer.recurrent_states[0].clone()]
    assert out
    return out


def test_a_shared_live_state_would_be_caught(engines):
    """The check above can fail: answering on the prefix's own cache (no fork) advances its recurrent
    states, and the next question's logits then move far beyond the tolerance."""
    model, video = _model("qwen3_5"), make_inputs("qwen3_5", large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    engines.append(engine := apply_reduction(model, 3))
    prefix = prefill(engine, video.inputs, reducer, video.grid)
    question = text_tokens(5, seed=3)
    first = answer(engine, prefix, question, max_new_tokens=1).first_logits
    live = prefix.cache
    prefix.cache.fork = lambda: live  # what a shallow snapshot amounts to for a DeltaNet layer
    answer(engine, prefix, question, max_new_tokens=1)
    again = answer(engine, prefix, question, max_new_tokens=1).first_logits
    assert (again - first).abs().max() > 1e-3


@pytest.mark.parametrize("layer", [2, 4])
def test_fastv_reads_the_nearest_full_attention_layer(engines, layer):
    """FastV at k reads layer k-1; on the hybrid that is a DeltaNet layer for k = 2 (read 3, reduce
    before 4) and the full-attention layer 3 for k = 4: both equal the by-hand run of the moved stage."""
    model, video = _model("qwen3_5", "eager"), make_inputs("qwen3_5", large=True)
    reducer = FastVReducer(0.3)
    expected = _by_hand(model, video, reducer, layer)[:, -1]
    engines.append(engine := apply_reduction(model, layer))
    prefix = prefill(engine, video.inputs, reducer, video.grid, whole_prompt=True)
    torch.testing.assert_close(prefix.last_logits, expected, atol=1e-5, rtol=0)
    assert prefix.cache.splits == [4]  # the reduced tokens enter layer 4 in both cases
    assert prefix.visual_tokens_kept < prefix.visual_tokens


def test_stage_placement_on_a_hybrid():
    """Hand-worked placements on layers [L L L F L L L F]."""
    assert attention_layer_from(KINDS, 0) == 3 and attention_layer_from(KINDS, 3) == 3
    assert attention_layer_from(KINDS, 4) == 7
    with pytest.raises(ValueError, match="no full-attention layer follows"):
        attention_layer_from(KINDS[:7], 4)
    assert hybrid_stage(Stage(2, needs_attention=True), KINDS).layer == 4  # reads 1 -> reads 3
    assert hybrid_stage(Stage(4, needs_attention=True), KINDS).layer == 4  # reads 3 already
    assert hybrid_stage(Stage(1, needs_attention=True, point="attention"), KINDS).layer == 3
    assert hybrid_stage(Stage(2, needs_attention=False), KINDS).layer == 2  # no attention read: stays
    with pytest.raises(ValueError, match="no layer after it"):
        hybrid_stage(Stage(5, needs_attention=True), KINDS)  # reads 4 -> 7, the last layer


def test_a_hybrid_cache_refuses_crop(engines):
    model, video = _model("qwen3_5"), make_inputs("qwen3_5", large=True)
    engines.append(engine := apply_reduction(model, 3))
    prefix = prefill(engine, video.inputs, SttmReducer(tau_s=0.5, tau_t=0.9), video.grid)
    cache = prefix.cache.fork()
    with torch.no_grad():
        model(input_ids=text_tokens(3, seed=1)[None], cache=cache, use_cache=True)
    with pytest.raises(ValueError, match="linear-attention"):
        cache.crop(-1)


def test_placement_is_checked_before_any_video():
    """HoliTom's inner stage (18 of 28 scaled to 8 layers: 5) reads layer 4 -> 7, the last: refused;
    at layer 4 it reads layer 3 and passes. KV pruning at layer 8 would score on 7 with nothing after;
    the same settings on a decoder without linear layers are not this check's business."""
    from types import SimpleNamespace

    from lmms_sttm.engine.hybrid import check_placement
    from lmms_sttm.merging.two_stage import TwoStage

    def inner(hidden, scores, grid, original):
        raise AssertionError("never run by the check")

    with pytest.raises(ValueError, match="nearest full-attention layer is 7, with no layer after"):
        check_placement(TwoStage(object(), inner, 18), None, KINDS, 2)
    check_placement(TwoStage(object(), inner, 18, layer=4), None, KINDS, 2)
    check_placement(TwoStage(object(), None, 18), None, KINDS, 2)  # no inner stage: nothing to read
    check_placement(FastVReducer(0.3), None, KINDS, 2)  # reads 1 -> 3, reduces before 4
    with pytest.raises(ValueError, match="no layer after it"):
        check_placement(FastVReducer(0.3), None, KINDS, 6)  # reads 5 -> 7
    with pytest.raises(ValueError, match="leaves no layer to prune"):
        check_placement(None, SimpleNamespace(layer=5), KINDS, 2)  # scores 4 -> 7
    check_placement(None, SimpleNamespace(layer=3), KINDS, 2)  # scores on 3, prunes from 4
    check_placement(TwoStage(object(), inner, 18), None, ["full_attention"] * 8, 2)
