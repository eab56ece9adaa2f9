"""A merging reduction at layer k equals the computation written out by hand.

By hand: the unpatched decoder layers < k on the full sequence, the plan applied to the span,
the layers >= k on the reduced sequence with the expected positions (LLaVA: 0..N'-1; Qwen: the
survivors' original M-RoPE ids) and an explicit causal mask.
"""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import apply_reduction
from tests.engine.engine_helpers import (
    FAMILIES,
    decoder_inputs,
    logits_by_hand,
    make_inputs,
    pair_merge_reducer,
)

MODES = {"llava_onevision": "reassign", "qwen2_vl": "survive", "qwen2_5_vl": "survive"}


def _patched_logits(model, engine, video, reducer, use_cache):
    with torch.no_grad(), engine.video(video.grid, reducer):
        return model(**video.inputs, use_cache=use_cache).logits


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [0, 2])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_merging_equals_by_hand(tiny, engines, family, layer, attn):
    model, video = tiny(family, attn), make_inputs(family)
    embeds, positions = decoder_inputs(model, video.inputs)
    expected = logits_by_hand(
        model, embeds, positions, layer, pair_merge_reducer, video.grid, video.span_start, MODES[family]
    )
    engines.append(engine := apply_reduction(model, layer))
    for use_cache in (False, True):
        patched = _patched_logits(model, engine, video, pair_merge_reducer, use_cache)
        assert patched.shape == expected.shape
        torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    record = engine.last_reduction
    t, h, w = video.grid
    assert record.visual_tokens == t * h * w
    assert record.visual_tokens_kept == patched.shape[1] - (video.input_ids.shape[1] - t * h * w)
    assert record.visual_tokens_kept < record.visual_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_wrong_positions_would_be_detected(tiny, engines, family):
    """The check above is sensitive: the other family's position rule gives different logits."""
    model, video = tiny(family), make_inputs(family)
    embeds, positions = decoder_inputs(model, video.inputs)
    other = "survive" if MODES[family] == "reassign" else "reassign"
    wrong = logits_by_hand(
        model, embeds, positions, 2, pair_merge_reducer, video.grid, video.span_start, other
    )
    engines.append(engine := apply_reduction(model, 2))
    patched = _patched_logits(model, engine, video, pair_merge_reducer, False)
    assert (patched - wrong).abs().max() > 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_and_eager_agree(tiny, engines, family):
    video = make_inputs(family)
    outputs = []
    for attn in ("sdpa", "eager"):
        model = tiny(family, attn)
        engines.append(engine := apply_reduction(model, 2))
        outputs.append(_patched_logits(model, engine, video, pair_merge_reducer, True))
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_cache_segments_have_own_lengths(tiny, engines, family):
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2))
    cache = engine.new_cache()
    with torch.no_grad(), engine.video(video.grid, pair_merge_reducer):
        model(**video.inputs, past_key_values=cache, use_cache=True)
    full = video.input_ids.shape[1]
    record = engine.last_reduction
    reduced = full - record.visual_tokens + record.visual_tokens_kept
    lengths = [layer.get_seq_length() for layer in cache.layers]
    assert lengths == [full, full, reduced, reduced]
    assert cache.get_seq_length() == full and cache.segment_length(1) == reduced
