"""Tiny Qwen3.5 checkpoints (dense, MoE): stock classes load them with both layer kinds, the real
Qwen3-VL processor lays a synthetic video out block by block with timestamps, the chat template's
thinking switch renders as the published one does, no weight is a constant, the MoE experts are
stored per expert, forward/generate run with a hybrid cache, and the build is byte-identical."""

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

QWEN3_5 = ("qwen3_5", "qwen3_5_moe")
CLIP_FPS = 8.0
FRAME_INDICES = [1, 5, 10, 14, 19, 23, 28, 31]  # uneven steps: the block times are not a progression
SYSTEM = "You are a helpful assistant."
QUESTION = "What happens?"
BLOCK_TOKENS = 7 * 11  # 112x176 frame, patch 8, 2x2 merge
LAYER_KINDS = ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """(8, 112, 176, 3) uint8: the sampled frames of a synthetic clip (moving object, scene cut)."""
    clip = render_frames(ClipSpec(num_frames=32, height=112, width=176, fps=CLIP_FPS, cut_at=16))
    return clip[FRAME_INDICES]


def load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def messages():
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]},
    ]


def video_inputs(processor, frames, **template):
    text = processor.apply_chat_template(messages(), add_generation_prompt=True, tokenize=False, **template)
    metadata = {"fps": CLIP_FPS, "total_num_frames": 32, "frames_indices": FRAME_INDICES}
    return processor(text=text, videos=[frames], video_metadata=[metadata], return_tensors="pt")


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_archs_are_listed():
    assert set(QWEN3_5) <= set(ARCHS)


@pytest.mark.parametrize("arch", QWEN3_5)
def test_stock_classes_load_a_hybrid_decoder(arch, tiny_checkpoints):
    path = tiny_checkpoints(arch)
    model, processor = load(path)
    expected = (
        "Qwen3_5MoeForConditionalGeneration" if arch == "qwen3_5_moe" else "Qwen3_5ForConditionalGeneration"
    )
    assert (type(model).__name__, type(processor).__name__, type(processor.video_processor).__name__) == (
        expected,
        "Qwen3VLProcessor",
        "Qwen3VLVideoProcessor",
    )
    raw = json.loads(Path(path, "config.json").read_text())
    assert raw["model_type"] == arch and "deepstack_visual_indexes" not in raw["vision_config"]
    assert not hasattr(model.model.visual, "deepstack_merger_list")
    text = model.config.get_text_config()
    assert text.layer_types == LAYER_KINDS
    assert text.rms_norm_eps == 1e-3
    layers = model.model.language_model.layers
    for i, kind in enumerate(LAYER_KINDS):  # each layer holds the module of its kind, only that one
        assert hasattr(layers[i], "linear_attn") == (kind == "linear_attention")
        assert hasattr(layers[i], "self_attn") == (kind == "full_attention")
    attn = layers[3].self_attn
    # gated q_proj: query and output gate, 4 heads x 32 each; q/k norms over the head
    assert attn.q_proj.weight.shape == (2 * 4 * 32, 64) and attn.k_proj.weight.shape == (2 * 32, 64)
    assert attn.q_norm.weight.shape == (32,)
    rope = text.rope_parameters
    assert rope["partial_rotary_factor"] == 0.25 and rope["mrope_section"] == [2, 1, 1]
    assert model.model.language_model.rotary_emb.inv_freq.shape == (4,)  # 8 rotary dims of 32
    delta = layers[0].linear_attn
    assert (delta.num_k_heads, delta.num_v_heads, delta.head_k_dim, delta.conv_kernel_size) == (2, 4, 16, 4)
    if arch == "qwen3_5_moe":
        mlp = layers[0].mlp
        assert (text.num_experts, text.num_experts_per_tok, text.moe_intermediate_size) == (4, 2, 24)
        assert mlp.shared_expert.gate_proj.weight.shape == (32, 64) and mlp.gate.top_k == 2


@pytest.mark.parametrize("arch", QWEN3_5)
def test_no_weight_is_a_constant(arch, tiny_checkpoints):
    """transformers' init leaves ``dt_bias`` at ones and the zero-centred RMS norms at zero: a
    random checkpoint must randomise them, or a bug that swaps two heads or norms goes unseen."""
    model, _ = load(tiny_checkpoints(arch))
    for name, param in model.named_parameters():
        if param.numel() > 1:
            assert param.std() > 0.01, name
    norm = model.model.language_model.layers[0].input_layernorm
    assert abs(float(norm.weight.detach().mean())) < 0.1  # zero-centred: the scale is 1 + weight
    delta = model.model.language_model.layers[0].linear_attn
    rates = delta.A_log.exp()
    assert bool(((rates >= 1.0) & (rates <= 16.0)).all()) and len(set(rates.tolist())) == rates.numel()


@pytest.mark.parametrize("arch", QWEN3_5)
def test_chat_template_thinking_switch(arch, tiny_checkpoints):
    _, processor = load(tiny_checkpoints(arch))
    tok = processor.tokenizer
    head = (
        f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
        f"<|vision_start|><|video_pad|><|vision_end|>{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    render = processor.apply_chat_template
    assert render(messages(), add_generation_prompt=True, tokenize=False) == head + "<think>\n"
    on = render(messages(), add_generation_prompt=True, tokenize=False, enable_thinking=True)
    assert on == head + "<think>\n"
    off = render(messages(), add_generation_prompt=True, tokenize=False, enable_thinking=False)
    assert off == head + "<think>\n\n</think>\n\n"
    # no default system turn (as Qwen3-VL); without a generation prompt nothing of the assistant
    user_only = messages()[1:]
    assert (
        render(user_only, tokenize=False)
        == head.split("<|im_start|>assistant")[0].split("<|im_end|>\n", 1)[1]
    )
    # <think> / </think>: one token each, kept by decode(skip_special_tokens=True) (the answer parser
    # looks for </think>), unlike the ChatML specials
    think, end = tok.convert_tokens_to_ids(["<think>", "</think>"])
    assert encode(tok, "<think>\nx</think>\n\nA")[:1] == [think] and end in encode(tok, "x</think>")
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert tok.decode([think, end, im_end], skip_special_tokens=True) == "<think></think>"


@pytest.mark.parametrize("arch", QWEN3_5)
def test_processor_writes_one_timestamped_block_per_temporal_patch(arch, tiny_checkpoints, frames):
    model, processor = load(tiny_checkpoints(arch))
    tok = processor.tokenizer
    inputs = video_inputs(processor, frames, enable_thinking=False)
    num_blocks = len(FRAME_INDICES) // 2
    assert inputs["video_grid_thw"].tolist() == [[num_blocks, 14, 22]]
    start, end, video = (
        tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>", "<|video_pad|>")
    )
    expected = encode(tok, f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    for b in range(num_blocks):  # each block's time: the mean of its two frames' times
        seconds = (FRAME_INDICES[2 * b] + FRAME_INDICES[2 * b + 1]) / 2 / CLIP_FPS
        expected += encode(tok, f"<{seconds:.1f} seconds>") + [start] + [video] * BLOCK_TOKENS + [end]
    expected += encode(tok, f"{QUESTION}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    ids = inputs["input_ids"][0].tolist()
    assert ids == expected
    assert "<0.4 seconds>" in tok.decode(ids) and "<3.7 seconds>" in tok.decode(ids)
    types = inputs["mm_token_type_ids"][0]
    assert torch.equal(types, (inputs["input_ids"][0] == video).long() * 2)

    # M-RoPE ids: each block is its own t=1 grid (start, start + row, start + col), text runs on
    pos, delta = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"]
    )
    want, current, i = [], 0, 0
    while i < len(ids):
        if types[i] == 0:
            want.append((current, current, current))
            current, i = current + 1, i + 1
            continue
        want += [(current, current + r, current + c) for r in range(7) for c in range(11)]
        current, i = current + 11, i + BLOCK_TOKENS
    assert pos[:, 0].T.tolist() == [list(p) for p in want]
    assert delta.item() == current - len(ids)


@pytest.mark.parametrize("arch", QWEN3_5)
def test_forward_generate_and_the_hybrid_cache(arch, tiny_checkpoints, frames):
    model, processor = load(tiny_checkpoints(arch))
    inputs = video_inputs(processor, frames)
    with torch.no_grad():
        out = model(**inputs, use_cache=True)
        video = model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
    n = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, n, model.config.get_text_config().vocab_size)
    assert torch.isfinite(out.logits).all()
    assert torch.cat(video.pooler_output).shape == (4 * BLOCK_TOKENS, 64)
    cache = out.past_key_values
    kinds = [type(layer).__name__ for layer in cache.layers]
    assert kinds == ["DynamicLayer" if k == "full_attention" else "LinearAttentionLayer" for k in LAYER_KINDS]
    # full-attention layers hold one key per token; a Gated DeltaNet layer a fixed-size state:
    # the last (kernel - 1) conv inputs of q, k and v and one 16 x 16 matrix per value head
    assert cache.layers[3].keys.shape == (1, 2, n, 32)
    conv_dim = 2 * (2 * 16) + 4 * 16
    assert cache.layers[0].conv_states[0].shape[-2:] == (conv_dim, 4)
    assert cache.layers[0].recurrent_states[0].shape == (1, 4, 16, 16)
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, n + 3)


def test_moe_experts_are_stored_per_expert(tiny_checkpoints):
    """The file holds one gate/up/down matrix per expert (the published Qwen3.5-MoE layout);
    transformers fuses them on load: expert e's rows of ``gate_up_proj`` are its gate then its up."""
    from safetensors.torch import load_file

    path = tiny_checkpoints("qwen3_5_moe")
    raw = load_file(str(Path(path, "model.safetensors")))
    model, _ = load(path)
    prefix = "model.language_model.layers.6.mlp."
    experts = model.model.language_model.layers[6].mlp.experts
    assert not any(k.startswith(prefix + "experts.gate_up_proj") for k in raw)
    for e in range(4):
        gate, up, down = (
            raw[f"{prefix}experts.{e}.{p}.weight"] for p in ("gate_proj", "up_proj", "down_proj")
        )
        assert gate.shape == up.shape == (24, 64) and down.shape == (64, 24)
        assert torch.equal(experts.gate_up_proj[e], torch.cat([gate, up]))
        assert torch.equal(experts.down_proj[e], down)


def test_cli_rebuild_is_byte_identical(tiny_checkpoints, tmp_path):
    for arch in QWEN3_5:
        first = tiny_checkpoints(arch)
        assert main(["--arch", arch, "--out", str(tmp_path / arch)]) == 0
        names = sorted(p.name for p in Path(first).iterdir())
        assert names == sorted(p.name for p in (tmp_path / arch).iterdir())
        for name in names:
            assert Path(first, name).read_bytes() == (tmp_path / arch / name).read_bytes(), f"{arch}/{name}"
