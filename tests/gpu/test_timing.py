"""Timed regions synchronise every GPU a model occupies (``device_map=auto`` spans several).

No GPU here: the tiny models stay on the CPU and claim, through accelerate's ``hf_device_map``,
to occupy ``cuda:0`` and ``cuda:1``; ``torch.cuda.synchronize`` is replaced by a recorder.
"""

from __future__ import annotations

import pytest
import torch

from lmms_sttm.engine import answer, apply_reduction, prefill
from lmms_sttm.engine.timing import model_devices
from lmms_sttm.models.video_inputs import llava_from_tower
from tests.engine.engine_helpers import (
    build_model,
    make_inputs,
    pair_merge_reducer,
    text_model_of,
    text_tokens,
)

TWO_GPUS = {
    "model.vision_tower": 0,
    "model.language_model.layers.0": 0,
    "model.language_model": 1,
    "lm_head": "cuda:1",
}
BOTH = [torch.device("cuda", 0), torch.device("cuda", 1)]


@pytest.fixture
def synced(monkeypatch):
    """The devices passed to ``torch.cuda.synchronize``, in call order."""
    calls: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(torch.device(device)))
    return calls


@pytest.fixture
def spread_model(monkeypatch):
    model = build_model("llava_onevision")
    monkeypatch.setattr(model, "hf_device_map", TWO_GPUS, raising=False)
    # accelerate leaves the text model's parameters on both GPUs; here its map stands in for them
    monkeypatch.setattr(text_model_of(model), "hf_device_map", TWO_GPUS, raising=False)
    return model


def test_model_devices_reads_the_device_map_and_drops_cpu_and_disk():
    stub = torch.nn.Linear(2, 2)
    stub.hf_device_map = {"a": 1, "b": "cpu", "c": "disk", "d": 0, "e": "cuda:1"}
    assert model_devices(stub) == tuple(BOTH)
    assert model_devices(torch.nn.Linear(2, 2)) == ()  # CPU parameters: nothing to synchronise


def test_prefill_answer_and_reduction_synchronise_every_device(spread_model, synced):
    engine = apply_reduction(spread_model, 2)
    try:
        video = make_inputs("llava_onevision")
        prefix = prefill(engine, video.inputs, pair_merge_reducer, video.grid)
        # prefill start/end and the reduction's start/end: each synchronises both GPUs
        assert synced == BOTH * 4
        synced.clear()
        answer(engine, prefix, text_tokens(3, seed=1), max_new_tokens=2)
        assert synced == BOTH * 3  # start, first token, end of decoding
    finally:
        engine.remove()


def test_vision_encoder_timing_synchronises_every_device(spread_model, synced):
    tower = torch.randn(4, 36, spread_model.config.vision_config.hidden_size)
    video = llava_from_tower(spread_model, tower, "no_token")
    assert video.features.shape[0] == 4 * 9
    assert synced == BOTH * 2
