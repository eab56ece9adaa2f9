"""Patching is per instance, reversible, dispatched by model_type, and loud on unsupported input."""

from __future__ import annotations

import pytest
import torch
import transformers

from lmms_sttm.engine import apply_reduction, engine_of, identity_reducer, prefill, remove_reduction
from tests.engine.engine_helpers import (
    FAMILIES,
    TEXT,
    build_model,
    make_inputs,
    pair_merge_reducer,
    text_tokens,
)


def _hook_counts(model):
    return sum(
        len(m._forward_pre_hooks) + len(m._forward_hooks) + len(m._forward_hooks_with_kwargs)
        for m in model.modules()
    )


def _class_dicts(model):
    classes = {type(m) for m in model.modules()} | {transformers.DynamicCache}
    return {cls: dict(vars(cls)) for cls in classes}


def test_unknown_model_type_raises():
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**TEXT, "num_hidden_layers": 2}))
    with pytest.raises(ValueError, match="model_type 'llama'"):
        apply_reduction(model, 0)


def test_layer_out_of_range_raises(tiny):
    with pytest.raises(ValueError, match="outside"):
        apply_reduction(tiny("qwen2_vl"), 4)


@pytest.mark.parametrize("family", FAMILIES)
def test_apply_remove_leaves_no_trace(family):
    model, video = build_model(family), make_inputs(family)
    with torch.no_grad():
        reference = model(**video.inputs).logits
    hooks, classes = _hook_counts(model), _class_dicts(model)
    attributes = {name: set(vars(m)) for name, m in model.named_modules()}
    engine = apply_reduction(model, 2)
    assert engine_of(model) is engine and _hook_counts(model) > hooks
    with pytest.raises(RuntimeError, match="already has"):
        apply_reduction(model, 1)
    with torch.no_grad(), engine.video(video.grid, pair_merge_reducer):
        reduced = model(**video.inputs).logits
    assert reduced.shape[1] < reference.shape[1]
    remove_reduction(model)
    assert engine_of(model) is None and engine.removed
    assert _hook_counts(model) == hooks
    assert _class_dicts(model) == classes
    assert {name: set(vars(m)) for name, m in model.named_modules()} == attributes
    with torch.no_grad():
        torch.testing.assert_close(model(**video.inputs).logits, reference, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="removed"), engine.video(video.grid, identity_reducer):
        pass
    apply_reduction(model, 0).remove()  # can be applied again


def test_second_instance_untouched(engines):
    first, second = build_model("llava_onevision"), build_model("llava_onevision")
    video = make_inputs("llava_onevision")
    with torch.no_grad():
        reference = second(**video.inputs).logits
    hooks = _hook_counts(second)
    engines.append(engine := apply_reduction(first, 2))
    assert _hook_counts(second) == hooks and engine_of(second) is None
    with torch.no_grad(), engine.video(video.grid, pair_merge_reducer):
        assert first(**video.inputs).logits.shape[1] < reference.shape[1]
        torch.testing.assert_close(second(**video.inputs).logits, reference, atol=0, rtol=0)


def test_idle_engine_runs_unpatched(tiny, engines):
    """Outside a video context and without a SegmentedCache, forwards are untouched (any batch size)."""
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    batch = {
        k: torch.cat([v, v]) if k in ("input_ids", "mm_token_type_ids") else v
        for k, v in video.inputs.items()
    }
    batch["pixel_values_videos"] = torch.cat([video.inputs["pixel_values_videos"]] * 2)
    batch["video_grid_thw"] = torch.cat([video.inputs["video_grid_thw"]] * 2)
    with torch.no_grad():
        reference = model(**batch).logits
        engines.append(apply_reduction(model, 2))
        torch.testing.assert_close(model(**batch).logits, reference, atol=0, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_of_two_raises(tiny, engines, family):
    model, video = tiny(family), make_inputs(family)
    inputs = dict(video.inputs)
    for key in ("input_ids", "mm_token_type_ids"):
        if key in inputs:
            inputs[key] = torch.cat([inputs[key]] * 2)
    inputs["pixel_values_videos"] = torch.cat([inputs["pixel_values_videos"]] * 2)
    for key in ("video_grid_thw", "second_per_grid_ts"):
        if key in inputs:
            inputs[key] = torch.cat([inputs[key]] * 2)
    engines.append(engine := apply_reduction(model, 2))
    with (
        pytest.raises(ValueError, match="batch size 1"),
        torch.no_grad(),
        engine.video(video.grid, identity_reducer),
    ):
        model(**inputs)


def test_loud_errors(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    padded = {**video.inputs, "attention_mask": torch.ones_like(video.input_ids)}
    padded["attention_mask"][0, 0] = 0
    for inputs, grid, message in [
        (padded, video.grid, "padding-free"),
        (video.inputs, (2, 3, 4), "do not fit"),
    ]:
        with pytest.raises(ValueError, match=message), torch.no_grad(), engine.video(grid, identity_reducer):
            model(**inputs)
    text_only = text_tokens(5, seed=0)[None]
    with (
        pytest.raises(ValueError, match="no video tokens"),
        torch.no_grad(),
        engine.video(video.grid, identity_reducer),
    ):
        model(input_ids=text_only)
    prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
    with pytest.raises(ValueError, match="first chunk"), torch.no_grad():
        model(input_ids=torch.tensor([[5, 5]]), past_key_values=prefix.cache.fork(), use_cache=True)
    repeated = lambda h, g: _repeated(identity_reducer(h, g))  # noqa: E731
    with (
        pytest.raises(ValueError, match="distinct"),
        torch.no_grad(),
        engine.video(video.grid, repeated),
    ):
        model(**video.inputs)
    with pytest.raises(ValueError, match="a grid without a reducer"):
        prefill(engine, video.inputs, None, video.grid)


def test_failed_forward_poisons_cache(tiny, engines):
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    cache = engine.new_cache()

    def broken(hidden, grid):
        raise RuntimeError("reducer failed")

    with (
        pytest.raises(RuntimeError, match="reducer failed"),
        torch.no_grad(),
        engine.video(video.grid, broken),
    ):
        model(**video.inputs, past_key_values=cache, use_cache=True)
    assert cache.failed
    with pytest.raises(ValueError, match="inconsistent"), torch.no_grad():
        model(input_ids=text_tokens(2, seed=0)[None], past_key_values=cache, use_cache=True)


def _repeated(plan):
    from dataclasses import replace

    rep = plan.rep_index.clone()
    rep[1] = rep[0]  # rows may come in any order (the authors' ToMe), but not share a representative
    return replace(plan, rep_index=rep)
