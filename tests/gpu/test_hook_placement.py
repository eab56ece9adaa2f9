"""FastV/DyCoke score hooks move their inputs to layer k-1's device before calling its submodules
(a forward pre-hook runs before accelerate moves the hidden states under ``device_map=auto``)."""

from __future__ import annotations

import torch

from lmms_sttm.engine import answer, apply_reduction, kv_pruning, placement, prefill, stage_driver
from lmms_sttm.engine.kv_pruning import KvPruning
from lmms_sttm.merging.dycoke import DycokeStage1Reducer
from lmms_sttm.merging.fastv import FastVReducer
from tests.engine.engine_helpers import build_model, make_inputs, text_model_of, text_tokens

K = 2


def test_inputs_move_to_the_layers_device():
    layer = torch.nn.Linear(2, 2, device="meta")
    hidden, rotary = torch.zeros(1, 3, 2), (torch.zeros(1, 3, 4), torch.ones(1, 3, 4))
    moved_hidden, moved_rotary = placement.on_layer_device(layer, hidden, rotary)
    assert moved_hidden.device.type == "meta"
    assert [t.device.type for t in moved_rotary] == ["meta", "meta"]


def _spy(monkeypatch, module, calls):
    real = module.on_layer_device

    def spy(layer, *values):
        calls.append((layer, values[0].shape))
        return real(layer, *values)

    monkeypatch.setattr(module, "on_layer_device", spy)


def test_fastv_and_dycoke_hooks_place_their_inputs_on_layer_k_minus_1(monkeypatch):
    model = build_model("qwen2_vl")
    layers = text_model_of(model).layers
    video = make_inputs("qwen2_vl")
    fastv_calls, dycoke_calls = [], []
    _spy(monkeypatch, stage_driver, fastv_calls)
    _spy(monkeypatch, kv_pruning, dycoke_calls)
    engine = apply_reduction(model, K)
    try:
        prefill(engine, video.inputs, FastVReducer(0.5), video.grid, whole_prompt=True)
        assert [layer for layer, _ in fastv_calls] == [layers[K - 1]]
        assert fastv_calls[0][1] == video.input_ids.shape + (model.config.get_text_config().hidden_size,)
        prefix = prefill(engine, video.inputs, DycokeStage1Reducer(prune=0.5), video.grid)
        pruning = KvPruning(layer=3, prune=0.5)
        answer(engine, prefix, text_tokens(2, seed=3), max_new_tokens=3, kv_pruning=pruning)
        assert dycoke_calls and all(layer is layers[2] for layer, _ in dycoke_calls)
    finally:
        engine.remove()
