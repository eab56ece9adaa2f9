"""Prefix reuse: one reduced prefill of [system + video + video-only text] serves every question."""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from tests.engine.engine_helpers import FAMILIES, make_inputs, pair_merge_reducer, text_tokens

QUESTION_LENGTHS = (1, 9)  # the single-token (decode-like) path and a longer chunk


def _full_prefill_last_logits(model, engine, video, question):
    full = video.extended(question)
    with torch.no_grad(), engine.video(full.grid, pair_merge_reducer):
        return model(**full.inputs, use_cache=False).logits[:, -1]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("attn", "layer"), [("sdpa", 0), ("sdpa", 2), ("eager", 2)])
def test_reused_prefix_matches_full_prefill(tiny, engines, family, layer, attn):
    model, video = tiny(family, attn), make_inputs(family)
    engines.append(engine := apply_reduction(model, layer))
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    layer_lengths = [cached.get_seq_length() for cached in prefix.cache.layers]
    for index, length in enumerate(QUESTION_LENGTHS):
        question = text_tokens(length, seed=10 + length)
        expected = _full_prefill_last_logits(model, engine, video, question)
        result = answer(engine, prefix, question, max_new_tokens=2)
        torch.testing.assert_close(result.first_logits, expected, atol=1e-5, rtol=0)
        assert result.stats.prefix_reused == (index > 0)
        assert result.stats.prompt_tokens == video.input_ids.shape[1] + length
    assert [cached.get_seq_length() for cached in prefix.cache.layers] == layer_lengths


@pytest.mark.parametrize("family", FAMILIES)
def test_decode_steps_match_full_prefill_of_the_longer_prompt(tiny, engines, family):
    """decode_positions=compact: generated token i continues each segment from its own length, so
    step logits equal a reduced prefill of [prompt + tokens so far] (LLaVA: N+i below k, N'+i from k).
    The default (the authors' N+i in every layer) is checked by hand in test_stages.py."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2, decode_positions="compact"))
    with torch.no_grad(), engine.video(video.grid, pair_merge_reducer):
        out = model.generate(
            **video.inputs,
            max_new_tokens=4,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    prompt = video.input_ids.shape[1]
    generated = out.sequences[0, prompt:]
    for step in range(1, 4):
        expected = _full_prefill_last_logits(model, engine, video, generated[:step])
        torch.testing.assert_close(out.logits[step], expected, atol=1e-5, rtol=0)
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    ours = answer(engine, prefix, generated[:0], max_new_tokens=4)
    assert torch.equal(ours.tokens, generated)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_generate_continues_a_prefix(tiny, engines, family):
    """transformers' generate on a fork of the prefix cache (full input_ids, no pixels) agrees."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    question = text_tokens(7, seed=3)
    ours = answer(engine, prefix, question, max_new_tokens=3)
    with torch.no_grad():
        out = model.generate(
            input_ids=video.extended(question).input_ids,
            past_key_values=prefix.cache.fork(),
            max_new_tokens=3,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    torch.testing.assert_close(out.logits[0], ours.first_logits, atol=1e-5, rtol=0)
    assert torch.equal(out.sequences[0, -3:], ours.tokens)


def test_crop_back_instead_of_fork(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    cache = prefix.cache
    first, second = text_tokens(5, seed=1), text_tokens(8, seed=2)
    with torch.no_grad():
        model(input_ids=first[None], past_key_values=cache, use_cache=True)
        cache.crop(-first.numel())
        logits = model(input_ids=second[None], past_key_values=cache, use_cache=True).logits[:, -1]
    torch.testing.assert_close(
        logits, _full_prefill_last_logits(model, engine, video, second), atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="cannot crop"):
        cache.crop(-(second.numel() + 1))


def test_call_stats(tiny, engines):
    model, video = tiny("llava_onevision"), make_inputs("llava_onevision")
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, pair_merge_reducer)  # grid read from pixel_values_videos
    assert (prefix.visual_tokens, prefix.length) == (36, video.input_ids.shape[1])
    stats = [answer(engine, prefix, text_tokens(3, seed=s), max_new_tokens=3).stats for s in (1, 2)]
    for s in stats:
        assert (s.visual_tokens, s.visual_tokens_kept, s.new_tokens) == (36, prefix.visual_tokens_kept, 3)
        assert s.prompt_tokens - s.prompt_tokens_reduced == 36 - prefix.visual_tokens_kept
        assert s.prefill_s > 0 and s.decode_s > 0
    assert not stats[0].prefix_reused and stats[1].prefix_reused
    assert stats[0].reduction_s == prefix.reduction_s > 0 and stats[1].reduction_s == 0
    assert stats[0].prefill_s > prefix.prefill_s  # question 1 pays for the prefix too
    assert set(stats[0].to_dict()) >= {"visual_tokens", "visual_tokens_kept", "prefill_s", "decode_s"}


def test_eos_stops_decoding(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    free = answer(engine, prefix, text_tokens(3, seed=3), max_new_tokens=4)
    stop = answer(engine, prefix, text_tokens(3, seed=3), max_new_tokens=4, eos_token_id=int(free.tokens[0]))
    assert stop.tokens.tolist() == free.tokens[:1].tolist()
