"""Query-aware reduction: last-token attention scores at layer k-1 (computed under sdpa from the
layer's own projections) equal the eager attention weights; FastV/FrameFusion through the engine
equal the by-hand computation with those reference scores; query-agnostic baselines give the
same first logits with and without prefix reuse."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, generate, prefill
from lmms_sttm.merging.budget import ExactBudget, SttmExactReducer
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.fastv import FastVReducer, fastv_prune
from lmms_sttm.merging.framefusion import FrameFusionReducer
from lmms_sttm.merging.pool import PoolReducer
from lmms_sttm.merging.tome import TomeReducer
from tests.engine.engine_helpers import FAMILIES, decoder_inputs, logits_by_hand, make_inputs, text_tokens

MODES = {"llava_onevision": "reassign", "qwen2_vl": "survive", "qwen2_5_vl": "survive"}
LAYER = 2


class Recording:
    """Wraps a query-aware reducer and keeps the context it was given."""

    needs_attention = True

    def __init__(self, inner) -> None:
        self.inner, self.context = inner, None

    def __call__(self, hidden, grid, context=None):
        self.context = context
        return self.inner(hidden, grid, context=context)


def _eager_scores(tiny, family, video, layer):
    """Reference: eager attention weights of layer ``layer``, last row, mean over heads, video columns."""
    eager = tiny(family, "eager")
    with torch.no_grad():
        out = eager(**video.inputs, output_attentions=True, use_cache=False)
    n = video.grid[0] * video.grid[1] * video.grid[2]
    weights = out.attentions[layer][0, :, -1]  # [heads, q]
    return weights[:, video.span_start : video.span_start + n].mean(0)


@pytest.mark.parametrize("family", FAMILIES)
def test_scores_match_eager_attention_and_fastv_matches_by_hand(tiny, engines, family):
    model, video = tiny(family, "sdpa"), make_inputs(family, suffix_len=7)
    assert model.config._attn_implementation == "sdpa"
    reference = _eager_scores(tiny, family, video, LAYER - 1)
    reducer = Recording(FastVReducer(0.3))
    engines.append(engine := apply_reduction(model, LAYER))
    with torch.no_grad(), engine.video(video.grid, reducer):
        patched = model(**video.inputs).logits
    ctx = reducer.context
    assert (ctx.layer, ctx.num_layers) == (LAYER, 4)
    torch.testing.assert_close(ctx.scores, reference, atol=1e-6, rtol=1e-5)

    def by_reference(hidden, grid):
        return fastv_prune(hidden, grid, reference, 0.3)

    embeds, positions = decoder_inputs(model, video.inputs)
    expected = logits_by_hand(
        model, embeds, positions, LAYER, by_reference, video.grid, video.span_start, MODES[family]
    )
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    assert engine.last_reduction.visual_tokens_kept == round(0.3 * engine.last_reduction.visual_tokens)


def test_scores_depend_on_the_question(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, LAYER))
    seen = []
    for question in (text_tokens(5, 1), text_tokens(5, 2)):
        reducer = Recording(FrameFusionReducer(cost=0.5))
        generate(engine, video.extended(question).inputs, reducer, video.grid, max_new_tokens=1)
        seen.append(reducer.context.scores)
    assert not torch.allclose(seen[0], seen[1])


def test_query_aware_reducers_need_a_layer_before_k(tiny, engines):
    model, video = tiny("llava_onevision"), make_inputs("llava_onevision")
    engines.append(engine := apply_reduction(model, 0))
    with pytest.raises(ValueError, match="k >= 1"), engine.video(video.grid, FastVReducer(0.5)):
        pass


QUERY_AGNOSTIC = {
    "tome": lambda: TomeReducer(0.3),
    "pool": lambda: PoolReducer(0.5),
    "dycoke_stage1": lambda: DycokeStage1Reducer(prune=0.7),
    "sttm_exact": lambda: SttmExactReducer(0.3),
    "tome_exact": lambda: ExactBudget(TomeReducer(0.15), 0.15),
}


@pytest.mark.parametrize("name", sorted(QUERY_AGNOSTIC))
def test_query_agnostic_baselines_equal_with_and_without_prefix_reuse(tiny, engines, name):
    model, video = tiny("llava_onevision", large=True), make_inputs("llava_onevision", large=True)
    engines.append(engine := apply_reduction(model, LAYER))
    prefix = prefill(engine, video.inputs, QUERY_AGNOSTIC[name](), video.grid)
    kept = prefix.visual_tokens_kept
    for seed in (1, 2):
        question = text_tokens(6, seed)
        reused = answer(engine, prefix, question, max_new_tokens=1)
        fresh = generate(
            engine, video.extended(question).inputs, QUERY_AGNOSTIC[name](), video.grid, max_new_tokens=1
        )
        torch.testing.assert_close(reused.first_logits, fresh.first_logits, atol=1e-5, rtol=0)
        assert fresh.stats.visual_tokens_kept < 4 * 7 * 7
        assert fresh.stats.visual_tokens_kept == kept
