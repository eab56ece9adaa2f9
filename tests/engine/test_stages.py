"""Methods as sequences of stages, the per-method position rules and the LLaVA decode positions,
each against the same computation written out by hand (first-token and decode logits)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.engine.stages import Stage, compose
from tests.engine.engine_helpers import (
    FAMILIES,
    decoder_inputs,
    make_inputs,
    pair_merge_reducer,
    reduction_from_labels,
    staged_logits_by_hand,
    text_tokens,
)

DEFAULT_RULE = {"llava_onevision": "renumber", "qwen2_vl": "original", "qwen2_5_vl": "original"}


def pairs(hidden, grid):
    """Later-stage reducer: merges neighbouring rows (0, 1), (2, 3), ... of the current tokens."""
    return reduction_from_labels(hidden, grid, torch.arange(hidden.shape[0]) // 2)


def reversed_rows(plan):
    """The same groups listed in reverse row order (tokens enter the LLM in that order)."""
    k = plan.num_kept
    flip = torch.arange(k - 1, -1, -1)
    return replace(
        plan,
        features=plan.features.flip(0),
        num_patches=plan.num_patches.flip(0),
        tlbr=plan.tlbr.flip(0),
        token_map=(k - 1) - plan.token_map,
        rep_index=plan.rep_index.index_select(0, flip),
    )


class Rule:
    """A one-stage reducer with a position rule."""

    def __init__(self, fn, rule):
        self.fn, self.position_rule = fn, rule

    def __call__(self, hidden, grid):
        return self.fn(hidden, grid)


class ThreeStages:
    """A staged method: pair merge before layer 0, row pairs before layer 1, again before layer 3
    (or at other layers / points)."""

    def __init__(self, rules=(None, None, None), layers=(0, 1, 3), points=("input",) * 3):
        self.rules, self.layers, self.points = rules, layers, points

    def start(self, grid, num_layers, layer):
        return _Run(self)


class _Run:
    def __init__(self, method):
        self.method, self.done = method, 0

    def next_stage(self):
        if self.done == len(self.method.layers):
            return None
        i = self.done
        return Stage(self.method.layers[i], position_rule=self.method.rules[i], point=self.method.points[i])

    def run(self, hidden, grid, context):
        assert (context.tokens is None) == (self.done == 0)
        fn = pair_merge_reducer if self.done == 0 else pairs
        self.done += 1
        return fn(hidden, grid)


def _generate(model, engine, video, method, steps):
    with torch.no_grad(), engine.video(video.grid, method):
        out = model.generate(
            **video.inputs,
            max_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return out.sequences[0, video.input_ids.shape[1] :], out.logits


def _by_hand(model, video, generated, stages, decode):
    full = video.extended(generated)
    embeds, positions = decoder_inputs(model, full.inputs)
    logits = staged_logits_by_hand(
        model, embeds, positions, stages, video.grid, video.span_start, tail=generated.numel(), decode=decode
    )
    return logits[:, -1]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("decode", ["authors", "compact"])
def test_decode_positions_equal_by_hand(tiny, engines, family, decode):
    """Generated token i: N+i in every layer (authors) or N'+i in layers >= k (compact); M-RoPE
    models continue from the survivors' ids either way. generate and prefix+answer agree."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2, decode_positions=decode))
    generated, logits = _generate(model, engine, video, pair_merge_reducer, 4)
    stages = [(2, pair_merge_reducer, DEFAULT_RULE[family])]
    other = "compact" if decode == "authors" else "authors"
    for step in range(1, 4):
        expected = _by_hand(model, video, generated[:step], stages, decode)
        torch.testing.assert_close(logits[step], expected, atol=1e-5, rtol=0)
        if family == "llava_onevision":  # the two rules differ after the first token
            assert (logits[step] - _by_hand(model, video, generated[:step], stages, other)).abs().max() > 1e-3
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    assert torch.equal(answer(engine, prefix, generated[:0], max_new_tokens=4).tokens, generated)


@pytest.mark.parametrize("decode", ["authors", "compact"])
def test_decode_positions_after_a_reused_prefix(tiny, engines, decode):
    """Prefix + question chunk is the prompt: its decode steps equal a by-hand run of the whole."""
    model, video = tiny("llava_onevision"), make_inputs("llava_onevision")
    engines.append(engine := apply_reduction(model, 2, decode_positions=decode))
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    question = text_tokens(5, seed=4)
    result = answer(engine, prefix, question, max_new_tokens=3)
    asked = video.extended(question)
    stages = [(2, pair_merge_reducer, "renumber")]
    for step in range(1, 3):
        full = asked.extended(result.tokens[:step])
        embeds, positions = decoder_inputs(model, full.inputs)
        logits = staged_logits_by_hand(
            model, embeds, positions, stages, video.grid, video.span_start, tail=step, decode=decode
        )
        assert int(logits[0, -1].argmax()) == int(result.tokens[step])
    # the step logits themselves, through transformers' generate on a fork of the prefix
    with torch.no_grad():
        out = model.generate(
            input_ids=asked.input_ids,
            past_key_values=prefix.cache.fork(),
            max_new_tokens=3,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    for step in range(1, 3):
        full = asked.extended(out.sequences[0, asked.input_ids.shape[1] :][:step])
        embeds, positions = decoder_inputs(model, full.inputs)
        expected = staged_logits_by_hand(
            model, embeds, positions, stages, video.grid, video.span_start, tail=step, decode=decode
        )[:, -1]
        torch.testing.assert_close(out.logits[step], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("rule", ["renumber", "original"])
def test_position_rule_of_the_method(tiny, engines, family, rule):
    """FastV / FrameFusion keep the survivors' original ids on LLaVA (``position_rule="original"``);
    M-RoPE families keep original ids, and asking them to renumber is an error (no silent
    replacement). First-token and decode logits by hand."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2))
    if rule == "renumber" and family != "llava_onevision":
        with pytest.raises(ValueError, match="renumbered positions on an M-RoPE family"):
            _generate(model, engine, video, Rule(pair_merge_reducer, rule), 3)
        return
    generated, logits = _generate(model, engine, video, Rule(pair_merge_reducer, rule), 3)
    stages = [(2, pair_merge_reducer, rule)]
    torch.testing.assert_close(logits[0], _by_hand(model, video, generated[:0], stages, "authors"))
    for step in range(1, 3):
        expected = _by_hand(model, video, generated[:step], stages, "authors")
        torch.testing.assert_close(logits[step], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_rows_enter_in_the_plans_order(tiny, engines, family):
    """A plan listing its groups in another order than raster (the authors' ToMe) puts them in the
    LLM in that order: renumbered along it, or each with its own original id."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2))
    backwards = lambda h, g: reversed_rows(pair_merge_reducer(h, g))  # noqa: E731
    with torch.no_grad(), engine.video(video.grid, backwards):
        patched = model(**video.inputs, use_cache=False).logits[:, -1]
    embeds, positions = decoder_inputs(model, video.inputs)
    stages = [(2, backwards, DEFAULT_RULE[family])]
    expected = staged_logits_by_hand(model, embeds, positions, stages, video.grid, video.span_start)[:, -1]
    torch.testing.assert_close(patched, expected, atol=1e-5, rtol=0)
    forwards = staged_logits_by_hand(
        model,
        embeds,
        positions,
        [(2, pair_merge_reducer, DEFAULT_RULE[family])],
        video.grid,
        video.span_start,
    )[:, -1]
    assert (expected - forwards).abs().max() > 1e-4  # the order matters, so the check can fail


@pytest.mark.parametrize("family", FAMILIES)
def test_three_stages_equal_by_hand(tiny, engines, family):
    """Stages before layers 0, 1 and 3 in one prefill: first-token and decode logits by hand, prefix
    reuse, one composed original-token map, NV = the final count, per-segment cache lengths."""
    model, video = tiny(family), make_inputs(family)
    rule = DEFAULT_RULE[family]
    method = ThreeStages()
    engines.append(engine := apply_reduction(model, 2))
    generated, logits = _generate(model, engine, video, method, 3)
    stages = [(0, pair_merge_reducer, rule), (1, pairs, rule), (3, pairs, rule)]
    for step in range(3):
        expected = _by_hand(model, video, generated[:step], stages, "authors")
        torch.testing.assert_close(logits[step], expected, atol=1e-5, rtol=0)
    record = engine.last_reduction
    t, h, w = video.grid
    first = pair_merge_reducer(torch.randn(t * h * w, 4), video.grid).num_kept
    assert record.visual_tokens == t * h * w
    assert record.visual_tokens_kept == ((first + 1) // 2 + 1) // 2
    assert record.plan.token_map.shape == (t * h * w,)
    assert int(record.plan.num_patches.sum()) == t * h * w
    # prefix reuse: the question extends every segment
    prefix = prefill(engine, video.inputs, method, video.grid)
    assert prefix.cache.splits == [0, 1, 3]
    lengths = [layer.get_seq_length() for layer in prefix.cache.layers]
    q = video.input_ids.shape[1]
    n = t * h * w
    second = (first + 1) // 2
    assert lengths == [q - n + first, q - n + second, q - n + second, q - n + record.visual_tokens_kept]
    question = text_tokens(6, seed=5)
    result = answer(engine, prefix, question, max_new_tokens=2)
    full = video.extended(question)
    embeds, positions = decoder_inputs(model, full.inputs)
    expected = staged_logits_by_hand(model, embeds, positions, stages, video.grid, video.span_start)[:, -1]
    torch.testing.assert_close(result.first_logits, expected, atol=1e-5, rtol=0)
    assert result.stats.visual_tokens_kept == record.visual_tokens_kept
    assert result.stats.prompt_tokens_reduced == full.input_ids.shape[1] - n + record.visual_tokens_kept


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_point_stages_equal_by_hand(tiny, engines, family):
    """Stages inside layers 0 and 1 (after attention, before the MLP, as FrameFusion merges) and a
    last one before layer 3: the MLP runs on the reduced tokens, the layer's cache keeps the
    tokens it attended over."""
    model, video = tiny(family), make_inputs(family)
    rule = DEFAULT_RULE[family]
    method = ThreeStages(layers=(0, 1, 3), points=("attention", "attention", "input"))
    engines.append(engine := apply_reduction(model, 2))
    generated, logits = _generate(model, engine, video, method, 3)
    stages = [(0, pair_merge_reducer, rule, "attention"), (1, pairs, rule, "attention"), (3, pairs, rule)]
    for step in range(3):
        expected = _by_hand(model, video, generated[:step], stages, "authors")
        torch.testing.assert_close(logits[step], expected, atol=1e-5, rtol=0)
    prefix = prefill(engine, video.inputs, method, video.grid)
    assert prefix.cache.splits == [1, 2, 3]
    lengths = [layer.get_seq_length() for layer in prefix.cache.layers]
    assert lengths[0] == video.input_ids.shape[1]  # layer 0 attended over every token
    assert lengths[1] > lengths[2] > lengths[3]


def test_stage_mixed_rules_on_llava(tiny, engines):
    """A stage keeping original ids after a renumbering one takes the renumbered ids it sees."""
    model, video = tiny("llava_onevision"), make_inputs("llava_onevision")
    method = ThreeStages(rules=("renumber", "original", "original"))
    engines.append(engine := apply_reduction(model, 2))
    generated, logits = _generate(model, engine, video, method, 2)
    stages = [(0, pair_merge_reducer, "renumber"), (1, pairs, "original"), (3, pairs, "original")]
    torch.testing.assert_close(
        logits[0], _by_hand(model, video, generated[:0], stages, "authors"), atol=1e-5, rtol=0
    )


def test_compose_maps_back_to_the_original_tokens():
    hidden = torch.randn(16, 3)
    first = pair_merge_reducer(hidden, (2, 2, 4))
    second = pairs(first.features, (1, 1, first.num_kept))
    total = compose(first, second)
    assert total.token_map.tolist() == second.token_map[first.token_map].tolist()
    assert total.rep_index.tolist() == first.rep_index[second.rep_index].tolist()
    assert int(total.num_patches.sum()) == 16 and total.grid == (2, 2, 4)
    assert torch.equal(total.features, second.features)


def test_stage_errors(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    with pytest.raises(ValueError, match="needs k >= 1"):
        Stage(0, needs_attention=True)
    with pytest.raises(ValueError, match="position_rule"):
        Stage(1, position_rule="shifted")
    late = ThreeStages(layers=(2, 1, 3))
    with (
        pytest.raises(RuntimeError, match="requested after"),
        torch.no_grad(),
        engine.video(video.grid, late),
    ):
        model(**video.inputs, use_cache=False)
    beyond = ThreeStages(layers=(0, 1, 9))
    with pytest.raises(RuntimeError, match="pending"), torch.no_grad(), engine.video(video.grid, beyond):
        model(**video.inputs, past_key_values=engine.new_cache(), use_cache=True)


def test_staged_hooks_are_temporary_and_removed(tiny, engines):
    """Attention-point hooks live for one reducing forward; remove() leaves no hook at all."""
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    text = model.model.language_model

    def counts():
        layers = sum(len(layer._forward_pre_hooks) for layer in text.layers)
        inner = sum(
            len(layer.post_attention_layernorm._forward_pre_hooks) + len(layer.mlp._forward_hooks)
            for layer in text.layers
        )
        return layers, inner

    before = counts()
    engine = apply_reduction(model, 2)
    assert counts() == (before[0] + 3, before[1])  # layers k-1.. for a one-stage reducer
    method = ThreeStages(layers=(0, 1, 3), points=("attention", "attention", "input"))
    with torch.no_grad(), engine.video(video.grid, method):
        model(**video.inputs, use_cache=False)
    assert counts() == (before[0] + 4, before[1])  # every layer now; no attention-point hook left
    engine.remove()
    assert counts() == before


def _last_member(plan):
    """The plan with ``position_index`` = each group's last original token (a merge destination)."""
    n = plan.token_map.shape[0]
    last = torch.full((plan.num_kept,), -1).scatter_reduce(0, plan.token_map, torch.arange(n), reduce="amax")
    return replace(plan, position_index=last)


@pytest.mark.parametrize("family", FAMILIES)
def test_position_index_is_honoured(tiny, engines, family):
    """Survivors take the ids of ``Reduction.position_index`` (ToMe's merge destination on Qwen2-VL)
    under the original-id rule; by hand, first-token and decode logits."""
    model, video = tiny(family), make_inputs(family)
    engines.append(engine := apply_reduction(model, 2))
    moved = Rule(lambda h, g: _last_member(pair_merge_reducer(h, g)), "original")
    generated, logits = _generate(model, engine, video, moved, 3)
    stages = [(2, moved.fn, "original")]
    for step in range(3):
        expected = _by_hand(model, video, generated[:step], stages, "authors")
        torch.testing.assert_close(logits[step], expected, atol=1e-5, rtol=0)
    plain = _by_hand(model, video, generated[:0], [(2, pair_merge_reducer, "original")], "authors")
    assert (logits[0] - plain).abs().max() > 1e-4  # the ids matter, so the check can fail
