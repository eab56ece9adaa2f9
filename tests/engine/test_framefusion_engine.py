"""The authors' FrameFusion through the engine: its stages (merge on the input embeddings, then
after each layer's attention, then a prune) against the same stages run by hand with eager
attention weights, first-token and decode logits; survivors keep their original position ids."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import apply_reduction
from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.stages import compose
from lmms_sttm.merging.framefusion_authors import FrameFusion
from tests.engine.engine_helpers import causal_float_mask, decoder_inputs, make_inputs


@torch.no_grad()
def _by_hand(model, video, generated, method):
    """The authors' loop written out: FrameFusion before layer 0 and after each layer's attention
    (eager weights of the last query row, mean over heads, for the prune), original position ids."""
    full = video.extended(generated)
    hidden, pos = decoder_inputs(model, full.inputs)
    text = model.model.language_model
    run = method.start(video.grid, len(text.layers), 2)
    start, n, tokens, calls = video.span_start, video.grid[0] * video.grid[1] * video.grid[2], None, []

    def apply(hidden, pos, scores, layer):
        nonlocal n, tokens
        grid = video.grid if tokens is None else (1, 1, n)
        plan = run.run(hidden[0, start : start + n], grid, AttentionContext(scores, layer, 4, tokens=tokens))
        tokens = compose(tokens, plan)
        stop = start + n
        hidden = torch.cat([hidden[:, :start], plan.features[None], hidden[:, stop:]], dim=1)
        kept = pos[..., start:stop][..., plan.position_source]
        pos = torch.cat([pos[..., :start], kept, pos[..., stop:]], dim=-1)
        n = plan.num_kept
        return hidden, pos

    stage = run.next_stage()
    hidden, pos = apply(hidden, pos, None, 0)
    calls.append((stage.layer, stage.point))
    for index, block in enumerate(text.layers):
        stage = run.next_stage()
        rotary = text.rotary_emb(hidden, pos)
        mask = causal_float_mask(hidden.shape[1], hidden.dtype)
        attn, weights = block.self_attn(
            block.input_layernorm(hidden), attention_mask=mask, position_embeddings=rotary
        )
        hidden = hidden + attn
        if stage is not None and stage.layer == index:
            last = -1 - generated.numel()  # the last prompt token's row
            scores = weights[0, :, last, start : start + n].float().mean(0) if stage.needs_attention else None
            hidden, pos = apply(hidden, pos, scores, index)
            calls.append((stage.layer, stage.point))
        hidden = hidden + block.mlp(block.post_attention_layernorm(hidden))
    return model.lm_head(text.norm(hidden))[:, -1], run, calls


# (family, static frames, link threshold, branch, stage calls): the tiny towers' frames are all
# alike at the authors' 0.6, so other thresholds reach the other branches on these inputs
CASES = [
    ("llava_onevision", True, 0.6, "budget", [(0, "input")]),
    ("qwen2_vl", True, 0.6, "budget", [(0, "input")]),
    ("qwen2_5_vl", True, 0.6, "budget", [(0, "input")]),
    ("llava_onevision", False, 0.7, "prune", [(0, "input"), (0, "attention")]),
    ("qwen2_vl", False, 0.85, "prune", [(0, "input"), (0, "attention"), (1, "attention")]),
    ("qwen2_5_vl", False, 0.75, "budget", [(0, "input"), (0, "attention")]),
]


@pytest.mark.parametrize(("family", "static", "sim", "branch", "calls"), CASES)
def test_framefusion_stages_equal_by_hand(tiny, engines, family, static, sim, branch, calls):
    """Merge-to-budget at once (static frames), merges then a prune by layer l's last-query
    attention after its attention, and merges over two calls reaching the budget."""
    model, video = tiny(family, "eager"), make_inputs(family, static=static)
    method = FrameFusion(0.5, sim=sim)
    engines.append(engine := apply_reduction(model, 2))
    cache = engine.new_cache()
    with torch.no_grad(), engine.video(video.grid, method):
        out = model.generate(
            **video.inputs,
            past_key_values=cache,
            max_new_tokens=3,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    generated = out.sequences[0, video.input_ids.shape[1] :]
    for step in range(3):
        expected, run, seen = _by_hand(model, video, generated[:step], method)
        torch.testing.assert_close(out.logits[step], expected, atol=1e-4, rtol=0)
    assert (run.branch, seen) == (branch, calls)
    assert cache.splits == [layer + (point == "attention") for layer, point in calls]
    t, h, w = video.grid
    n = t * h * w
    kept = engine.last_reduction.visual_tokens_kept
    if len(calls) == 1:  # merged to the budget at once: int(0.5 * n) links (4 layers, nothing spent)
        assert kept == n - int(0.5 * n)
    assert int(engine.last_reduction.plan.num_patches.sum()) == n
