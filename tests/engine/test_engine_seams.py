"""The engine refuses what it cannot run before it runs it, and times what a stage costs."""

from __future__ import annotations

import time

import pytest
import torch

from lmms_sttm.engine import apply_reduction, session
from lmms_sttm.engine.kv_pruning import KvPruner, KvPruning
from lmms_sttm.merging.fastv import FastVReducer
from tests.engine.engine_helpers import make_inputs, pair_merge_reducer, text_tokens
from tests.engine.test_stages import ThreeStages


def test_two_stages_at_one_split_are_refused_before_the_second_runs(tiny, engines, monkeypatch):
    """An attention stage inside layer 1 and an input stage at layer 2 both split at 2: the second
    is refused before it runs, and the cache is marked unusable."""
    import tests.engine.test_stages as stages_module

    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    calls = []
    monkeypatch.setattr(
        stages_module, "pairs", lambda h, g: calls.append(h.shape[0]) or pair_merge_reducer(h, g)
    )
    method = ThreeStages(layers=(0, 1, 2), points=("input", "attention", "input"))
    with (
        pytest.raises(RuntimeError, match="two stages open a segment at layer 2"),
        torch.no_grad(),
        engine.video(video.grid, method),
    ):
        model(**video.inputs, past_key_values=(cache := engine.new_cache()), use_cache=True)
    assert len(calls) == 1  # the attention stage ran; the colliding input stage never did
    assert cache.failed


def test_question_reading_stage_is_refused_in_a_prefix_prefill(tiny, engines):
    model, video = tiny("llava_onevision"), make_inputs("llava_onevision")
    engines.append(engine := apply_reduction(model, 2))
    with pytest.raises(ValueError, match="reads the last prompt token's attention"):
        session.prefill(engine, video.inputs, FastVReducer(0.5), video.grid)
    # the whole prompt (question included) is fine
    asked = video.extended(text_tokens(4, seed=1))
    prefix = session.prefill(engine, asked.inputs, FastVReducer(0.5), video.grid, whole_prompt=True)
    assert prefix.visual_tokens_kept == round(0.5 * prefix.visual_tokens)


def test_staged_question_reading_stage_is_refused_in_a_prefix_prefill(tiny, engines):
    from lmms_sttm.merging.framefusion_authors import FrameFusion

    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    with pytest.raises(ValueError, match="reads the last prompt token's attention"):
        session.prefill(engine, video.inputs, FrameFusion(0.3), video.grid)


def test_attention_scores_count_as_merge_time(tiny, engines, monkeypatch):
    """A query-aware stage's score computation is inside the recorded merge time."""
    import lmms_sttm.engine.stage_driver as driver

    real = driver.last_token_attention

    def slow(*args, **kwargs):
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(driver, "last_token_attention", slow)
    model, video = tiny("qwen2_vl"), make_inputs("qwen2_vl")
    engines.append(engine := apply_reduction(model, 2))
    asked = video.extended(text_tokens(4, seed=1))
    prefix = session.prefill(engine, asked.inputs, FastVReducer(0.5), video.grid, whole_prompt=True)
    assert prefix.reduction_s >= 0.2


def test_decode_stage_is_checked_against_the_last_split(tiny, engines):
    model = tiny("llava_onevision")
    engines.append(engine := apply_reduction(model, 1))
    with pytest.raises(ValueError, match="must not precede the last split 3"):
        KvPruner(engine, KvPruning(layer=3, prune=0.8), (6, 20), 36, last_split=3)
    pruner = KvPruner(engine, KvPruning(layer=3, prune=0.8), (6, 20), 36, last_split=2)
    pruner.remove()
