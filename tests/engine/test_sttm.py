"""STTM (lmms_sttm.merging.sttm) through the engine equals the by-hand computation."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.merging.sttm import SttmReducer
from tests.engine.engine_helpers import FAMILIES, decoder_inputs, logits_by_hand, make_inputs

pytest.importorskip("lmms_sttm.merging.sttm")

MODES = {"llava_onevision": "reassign", "qwen2_vl": "survive", "qwen2_5_vl": "survive"}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [0, 2])
def test_sttm_equals_by_hand(tiny, engines, family, layer):
    model, video = tiny(family, large=True), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    embeds, positions = decoder_inputs(model, video.inputs)
    expected = logits_by_hand(
        model, embeds, positions, layer, reducer, video.grid, video.span_start, MODES[family]
    )
    engines.append(engine := apply_reduction(model, layer))
    with torch.no_grad(), engine.video(video.grid, reducer):
        patched = model(**video.inputs).logits
    assert patched.shape == expected.shape
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    record = engine.last_reduction
    assert record.visual_tokens_kept < record.visual_tokens
    assert int(record.plan.num_patches.sum()) == record.visual_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_sttm_prefix_reuse(tiny, engines, family):
    model, video = tiny(family, large=True), make_inputs(family, large=True, static=True)
    reducer = SttmReducer(tau_s=0.5, tau_t=0.9)
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, reducer, video.grid)
    question = torch.arange(20, 27)
    full = video.extended(question)
    with torch.no_grad(), engine.video(full.grid, reducer):
        expected = model(**full.inputs).logits[:, -1]
    torch.testing.assert_close(
        answer(engine, prefix, question, max_new_tokens=1).first_logits, expected, atol=1e-5, rtol=0
    )
