"""An identity reduction through the engine reproduces the unpatched model exactly."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import apply_reduction, generate, identity_reducer
from tests.engine.engine_helpers import FAMILIES, make_inputs


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [0, 2])
def test_identity_logits_equal_unpatched(tiny, engines, family, layer):
    model, video = tiny(family), make_inputs(family)
    with torch.no_grad():
        reference = model(**video.inputs).logits
        engines.append(engine := apply_reduction(model, layer))
        with engine.video(video.grid, identity_reducer):
            patched = model(**video.inputs).logits
    assert patched.shape == reference.shape
    torch.testing.assert_close(patched, reference, atol=1e-5, rtol=0)
    t, h, w = video.grid
    record = engine.last_reduction
    assert record.visual_tokens == record.visual_tokens_kept == t * h * w
    assert record.span_start == video.span_start


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_greedy_equal_unpatched(tiny, engines, family):
    model, video = tiny(family), make_inputs(family)
    with torch.no_grad():
        reference = model.generate(
            **video.inputs,
            max_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    engines.append(engine := apply_reduction(model, 2))
    with torch.no_grad(), engine.video(video.grid, identity_reducer):
        hf = model.generate(
            **video.inputs,
            max_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    ours = generate(engine, video.inputs, identity_reducer, video.grid, max_new_tokens=5)
    prompt = video.input_ids.shape[1]
    assert torch.equal(hf.sequences, reference.sequences)
    assert torch.equal(ours.tokens, reference.sequences[0, prompt:])
    for step_ref, step_hf in zip(reference.logits, hf.logits, strict=True):
        torch.testing.assert_close(step_hf, step_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.first_logits, reference.logits[0], atol=1e-5, rtol=0)
