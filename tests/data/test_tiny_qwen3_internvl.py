"""Tiny Qwen3-VL (dense, MoE) and InternVL3.5 checkpoints: stock classes load them, the real
processors lay a synthetic video out block by block, forward/generate run, DeepStack is on, the
MoE experts are stored as published, and the build is byte-identical."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lmms_sttm.data.synthetic import ClipSpec, render_frames  # noqa: E402
from lmms_sttm.data.tiny import ARCHS, main  # noqa: E402

QWEN3 = ("qwen3_vl", "qwen3_vl_moe")
NEW_ARCHS = (*QWEN3, "internvl3_5")
CLIP_FPS = 8.0
# 8 of a 32-frame clip's frames (uneven steps, so the block timestamps are not a plain progression)
FRAME_INDICES = [1, 5, 10, 14, 19, 23, 28, 31]
QUESTION = "What happens?"
QWEN_BLOCK_TOKENS = 7 * 11  # 112x176 frame, patch 8, 2x2 merge
INTERNVL_FRAME_TOKENS = 7 * 7  # 112x112, patch 8, pixel shuffle 0.5


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """(8, 112, 176, 3) uint8: the sampled frames of a synthetic clip (moving object, scene cut)."""
    clip = render_frames(ClipSpec(num_frames=32, height=112, width=176, fps=CLIP_FPS, cut_at=16))
    return clip[FRAME_INDICES]


def load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def chat_text(processor) -> str:
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def qwen3_inputs(processor, frames):
    metadata = {"fps": CLIP_FPS, "total_num_frames": 32, "frames_indices": FRAME_INDICES}
    return processor(
        text=chat_text(processor), videos=[frames], video_metadata=[metadata], return_tensors="pt"
    )


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_new_archs_are_listed():
    assert set(NEW_ARCHS) <= set(ARCHS)


@pytest.mark.parametrize("arch", NEW_ARCHS)
def test_stock_classes_load_the_published_layout(arch, tiny_checkpoints):
    path = tiny_checkpoints(arch)
    model, processor = load(path)
    expected = {
        "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
        "qwen3_vl_moe": ("Qwen3VLMoeForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
        "internvl3_5": ("InternVLForConditionalGeneration", "InternVLProcessor", "InternVLVideoProcessor"),
    }[arch]
    got = (type(model).__name__, type(processor).__name__, type(processor.video_processor).__name__)
    assert got == expected
    raw = json.loads(Path(path, "config.json").read_text())
    text = model.config.get_text_config()
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (
        64,
        6,
        4,
        2,
    )
    assert text.head_dim == 16
    layer = model.model.language_model.layers[0].self_attn
    assert layer.q_norm.weight.shape == layer.k_norm.weight.shape == (16,)  # Qwen3-style q/k norms
    if arch in QWEN3:
        assert raw["model_type"] == arch
        vision = raw["vision_config"]
        assert vision["depth"] == 3 and vision["deepstack_visual_indexes"] == [0, 1, 2]
        assert (
            text.rope_parameters["mrope_section"] == [4, 2, 2] and text.rope_parameters["mrope_interleaved"]
        )
        assert len(model.model.visual.deepstack_merger_list) == 3
    else:
        assert raw["model_type"] == "internvl" and raw["text_config"]["model_type"] == "qwen3"
        assert raw["downsample_ratio"] == 0.5 and raw["image_seq_length"] == INTERNVL_FRAME_TOKENS
        assert raw["image_token_id"] == processor.image_token_id
        assert processor.tokenizer.convert_ids_to_tokens(raw["image_token_id"]) == "<IMG_CONTEXT>"
    if arch == "qwen3_vl_moe":
        assert (text.num_experts, text.num_experts_per_tok, text.moe_intermediate_size) == (4, 2, 24)


@pytest.mark.parametrize("arch", QWEN3)
def test_qwen3_vl_writes_one_timestamped_block_per_temporal_patch(arch, tiny_checkpoints, frames):
    _, processor = load(tiny_checkpoints(arch))
    tok = processor.tokenizer
    text = chat_text(processor)
    assert text == (
        "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>"
        f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    inputs = qwen3_inputs(processor, frames)
    num_blocks = len(FRAME_INDICES) // 2
    assert inputs["video_grid_thw"].tolist() == [[num_blocks, 14, 22]]
    assert inputs["pixel_values_videos"].shape == (num_blocks * 14 * 22, 3 * 2 * 8 * 8)

    # the sequence by hand: each block's time is the mean of its two frames' times
    start, end, video = (
        tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>")
    )
    expected = encode(tok, "<|im_start|>user\n")
    for b in range(num_blocks):
        seconds = (FRAME_INDICES[2 * b] + FRAME_INDICES[2 * b + 1]) / 2 / CLIP_FPS
        expected += encode(tok, f"<{seconds:.1f} seconds>") + [start] + [video] * QWEN_BLOCK_TOKENS + [end]
    expected += encode(tok, f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    ids = inputs["input_ids"][0].tolist()
    assert ids == expected
    assert tok.decode(ids).count(" seconds>") == num_blocks == ids.count(start) == ids.count(end)
    assert "<0.4 seconds>" in tok.decode(ids) and "<3.7 seconds>" in tok.decode(ids)
    # mm_token_type_ids: 2 exactly at the video tokens (vision start/end and timestamps are text, 0)
    types = inputs["mm_token_type_ids"][0]
    assert torch.equal(types, (inputs["input_ids"][0] == video).long() * 2)


@pytest.mark.parametrize("arch", QWEN3)
def test_qwen3_vl_positions_treat_each_block_as_its_own_t1_grid(arch, tiny_checkpoints, frames):
    model, processor = load(tiny_checkpoints(arch))
    inputs = qwen3_inputs(processor, frames)
    pos, delta = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"]
    )
    types = inputs["mm_token_type_ids"][0].tolist()
    expected, current, i = [], 0, 0
    while i < len(types):  # text: t = h = w = running index; a block: (start, start + row, start + col)
        if types[i] == 0:
            expected.append((current, current, current))
            current, i = current + 1, i + 1
            continue
        expected += [(current, current + r, current + c) for r in range(7) for c in range(11)]
        current, i = current + 11, i + QWEN_BLOCK_TOKENS
    assert pos[:, 0].T.tolist() == [list(p) for p in expected]
    assert delta.item() == current - len(types)


@pytest.mark.parametrize("arch", QWEN3)
def test_qwen3_vl_forward_generate_and_deepstack_after_layers_0_1_2(arch, tiny_checkpoints, frames):
    model, processor = load(tiny_checkpoints(arch))
    inputs = qwen3_inputs(processor, frames)
    layers = model.model.language_model.layers
    outputs, inputs_of = {}, {}
    hooks = [
        layer.register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o))
        for i, layer in enumerate(layers)
    ]
    hooks += [
        layer.register_forward_pre_hook(
            lambda m, a, kw, i=i: inputs_of.__setitem__(i, kw.get("hidden_states", a[0] if a else None)),
            with_kwargs=True,
        )
        for i, layer in enumerate(layers)
    ]
    with torch.no_grad():
        logits = model(**inputs).logits
        vision = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    for h in hooks:
        h.remove()
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.get_text_config().vocab_size)
    assert torch.isfinite(logits).all()

    visual = inputs["mm_token_type_ids"][0] == 2
    deepstack = [torch.cat(f) for f in vision.deepstack_features]
    assert len(deepstack) == 3 and all(f.shape == (int(visual.sum()), 64) for f in deepstack)
    for i in range(len(layers) - 1):
        added = inputs_of[i + 1][0] - outputs[i][0]
        assert torch.equal(added[~visual], torch.zeros_like(added[~visual]))  # text positions untouched
        if i < 3:
            torch.testing.assert_close(added[visual], deepstack[i], rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(added[visual], torch.zeros_like(added[visual]))

    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 3)


def test_qwen3_vl_moe_experts_are_stored_transposed_as_published(tiny_checkpoints):
    from safetensors.torch import load_file

    path = tiny_checkpoints("qwen3_vl_moe")
    raw = load_file(str(Path(path, "model.safetensors")))
    model, _ = load(path)
    prefix = "model.language_model.layers.5.mlp."
    assert raw[prefix + "experts.gate_up_proj"].shape == (4, 64, 48)  # [E, hidden, 2*width]
    assert raw[prefix + "experts.down_proj"].shape == (4, 24, 64)  # [E, width, hidden]
    experts = model.model.language_model.layers[5].mlp.experts
    assert torch.equal(experts.gate_up_proj, raw[prefix + "experts.gate_up_proj"].transpose(1, 2))
    assert torch.equal(experts.down_proj, raw[prefix + "experts.down_proj"].transpose(1, 2))
    assert model.model.language_model.layers[5].mlp.gate.top_k == 2


def test_internvl3_5_writes_frame_lines(tiny_checkpoints, frames):
    model, processor = load(tiny_checkpoints("internvl3_5"))
    tok = processor.tokenizer
    text = chat_text(processor)
    assert text == f"<|im_start|>user\n<video>\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    inputs = processor(text=text, videos=[frames], return_tensors="pt")
    assert inputs["pixel_values"].shape == (len(FRAME_INDICES), 3, 112, 112)
    start, end, context = (tok.convert_tokens_to_ids(t) for t in ("<img>", "</img>", "<IMG_CONTEXT>"))
    expected = encode(tok, "<|im_start|>user\n")
    for i in range(len(FRAME_INDICES)):
        expected += encode(tok, f"Frame{i + 1}: ") + [start] + [context] * INTERNVL_FRAME_TOKENS + [end]
        expected += encode(tok, "\n")
    expected += encode(tok, f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    ids = inputs["input_ids"][0].tolist()
    assert ids == expected
    assert ids.count(context) == len(FRAME_INDICES) * INTERNVL_FRAME_TOKENS
    assert context == model.config.image_token_id

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, len(ids), model.config.get_text_config().vocab_size)
    assert torch.isfinite(logits).all()
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, len(ids) + 3)


def test_cli_rebuild_is_byte_identical(tiny_checkpoints, tmp_path):
    for arch in NEW_ARCHS:
        first = tiny_checkpoints(arch)
        assert main(["--arch", arch, "--out", str(tmp_path / arch)]) == 0
        names = sorted(p.name for p in Path(first).iterdir())
        assert names == sorted(p.name for p in (tmp_path / arch).iterdir())
        for name in names:
            assert Path(first, name).read_bytes() == (tmp_path / arch / name).read_bytes(), (
                f"{arch}/{name} differs"
            )
