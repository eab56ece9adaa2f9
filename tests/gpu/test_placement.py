"""The rank's GPU, the dtype and the attention implementation picked at start-up; weights loaded in place."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from loguru import logger

from lmms_sttm.models import base
from lmms_sttm.models.llava_video_sttm import LlavaVideoSttm
from lmms_sttm.models.placement import pick_attention, pick_device

CUDA = torch.device("cuda")


@pytest.fixture
def warnings():
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    yield lines
    logger.remove(sink)


@pytest.fixture
def rank_one_of_two(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")


@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_bare_cuda_under_several_processes_is_the_local_rank_gpu(rank_one_of_two, requested):
    assert pick_device(requested, 1, 2) == torch.device("cuda", 1)


def test_one_process_and_cpu_keep_the_requested_device():
    assert pick_device("cuda:0", 0, 1) == torch.device("cuda", 0)
    assert pick_device("cuda:3", 0, 1) == torch.device("cuda", 3)
    assert pick_device("cpu", 1, 2) == torch.device("cpu")


def test_another_explicit_gpu_under_several_processes_stops(rank_one_of_two):
    with pytest.raises(ValueError, match="same GPU"):
        pick_device("cuda:2", 1, 2)


def test_model_of_rank_one_loads_onto_its_local_gpu(rank_one_of_two, monkeypatch, tiny_checkpoints):
    """``--device cuda:0`` on rank 1 of 2: the checkpoint is loaded with ``device_map={"": "cuda:1"}``."""
    seen = {}

    def fake_load(pretrained, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop after placement")

    monkeypatch.setattr(base, "load_checkpoint", fake_load)
    with pytest.raises(RuntimeError, match="stop after placement"):
        LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), tau_s=0.9, tau_t=0.8, device="cuda:0")
    assert seen["device_map"] == {"": "cuda:1"}
    assert seen["dtype"] == torch.bfloat16


def test_weights_load_straight_onto_the_device(tiny_checkpoints, monkeypatch):
    """No CPU-then-move: the loader gets ``device_map={"": device}`` and the model is never ``.to()``-moved."""
    seen = {}
    real = base.load_checkpoint

    def spy(pretrained, **kwargs):
        seen.update(kwargs)
        loaded = real(pretrained, **kwargs)
        loaded.model.to = lambda *a, **k: pytest.fail("the model was moved after loading")
        return loaded

    monkeypatch.setattr(base, "load_checkpoint", spy)
    model = LlavaVideoSttm(pretrained=tiny_checkpoints("llava_video"), tau_s=0.9, tau_t=0.8, device="cpu")
    assert seen["device_map"] == {"": "cpu"}
    assert next(model.model.parameters()).device == torch.device("cpu")


def test_auto_never_picks_flash_attention_in_float32(warnings, monkeypatch):
    monkeypatch.setitem(
        sys.modules, "flash_attn", types.SimpleNamespace(flash_attn_func=1, flash_attn_varlen_func=1)
    )
    assert pick_attention("auto", CUDA, torch.float32) == "sdpa"
    assert len(warnings) == 1 and "sdpa" in warnings[0] and "float32" in warnings[0]
    assert pick_attention("auto", CUDA, torch.bfloat16) == "flash_attention_2"  # importable, bf16


def test_auto_never_picks_flash_attention_that_cannot_import(warnings, monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError, like a broken build
    assert pick_attention("auto", CUDA, torch.bfloat16) == "sdpa"
    assert len(warnings) == 1 and "flash_attn cannot be imported" in warnings[0]


def test_cpu_auto_is_sdpa_silently_and_explicit_choices_are_kept(warnings):
    assert pick_attention("auto", torch.device("cpu"), torch.float32) == "sdpa"
    assert pick_attention("eager", CUDA, torch.float32) == "eager"
    assert warnings == []
    with pytest.raises(ValueError, match="bfloat16 or float16"):
        pick_attention("flash_attention_2", CUDA, torch.float32)
