"""Tiny random models of the engine families and their video prompts (offline, seconds).

Models are built directly from transformers config classes (text: hidden 64, 4 layers, 4 heads,
2 kv heads, vocab 400; tiny vision towers) with weights re-drawn at std 0.1 so that positions and
merging visibly change the logits. Used by the conformance check (``check_method``) and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAD, EOS, IMAGE, VIDEO, VSTART, VEND, IMG_START, IMG_END = 0, 1, 4, 5, 6, 7, 8, 9
TEXT = {
    "vocab_size": 400,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "pad_token_id": PAD,
    "bos_token_id": PAD,
    "eos_token_id": EOS,
    "tie_word_embeddings": False,
}
QWEN_ROPE = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
#: the old families (one video run) and the frame-block families (Qwen3-VL with DeepStack, InternVL3.5)
ONE_RUN = ("llava_onevision", "qwen2_vl", "qwen2_5_vl")
#: the hybrid families (Qwen3.5 dense and MoE: Gated DeltaNet layers with one full-attention layer in four)
HYBRID = ("qwen3_5", "qwen3_5_moe")
BLOCKS = ("qwen3_vl", "qwen3_vl_moe", "internvl", *HYBRID)
FAMILIES = ONE_RUN + BLOCKS
INTERNVL_SIDE = 3  # 48 px frames, patch 8 -> 6x6 -> pixel shuffle 0.5 -> 3x3 tokens per frame (112 px: 7x7)


def _randomize(model: torch.nn.Module, seed: int, norms: bool = False) -> torch.nn.Module:
    """Weights at std 0.1; norm weights kept (``norms=False``) or drawn at std 0.1 too (Qwen3.5's
    zero-centred norms and its DeltaNet constants would otherwise be constants)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and not norms:
                continue
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    return model.eval()


def build_model(
    family: str, attn: str = "sdpa", seed: int = 0, large: bool = False, layers: int = 4
) -> torch.nn.Module:
    """A tiny random ``family`` model with attention ``attn`` (same weights for the same seed).

    ``large``: LLaVA-OV frames of 112 px (a 7x7 pooled grid instead of 3x3); ``layers``: decoder layers.
    """
    text = {**TEXT, "num_hidden_layers": layers}
    import transformers as tf

    if family == "llava_onevision":
        config = tf.LlavaOnevisionConfig(
            text_config={"model_type": "qwen2", **text},
            vision_config={
                "model_type": "siglip_vision_model",
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": 112 if large else 48,
                "patch_size": 8,
            },
            image_token_index=IMAGE,
            video_token_index=VIDEO,
            vision_feature_select_strategy="full",
            vision_feature_layer=-1,
            image_grid_pinpoints=[[112, 112]] if large else [[48, 48]],
            tie_word_embeddings=False,
        )
        cls = tf.LlavaOnevisionForConditionalGeneration
    elif family in ("qwen3_vl", "qwen3_vl_moe"):
        qwen3 = {**text, "head_dim": 16, "rope_parameters": {**QWEN_ROPE, "mrope_interleaved": True}}
        if family == "qwen3_vl_moe":
            qwen3.update(
                num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1
            )
        vision = {
            "depth": 3,
            "num_heads": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": 64,
            "patch_size": 8,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1, 2],
        }
        config_cls, cls = (
            (tf.Qwen3VLConfig, tf.Qwen3VLForConditionalGeneration)
            if family == "qwen3_vl"
            else (tf.Qwen3VLMoeConfig, tf.Qwen3VLMoeForConditionalGeneration)
        )
        config = config_cls(
            text_config=qwen3,
            vision_config=vision,
            image_token_id=IMAGE,
            video_token_id=VIDEO,
            vision_start_token_id=VSTART,
            vision_end_token_id=VEND,
            tie_word_embeddings=False,
        )
    elif family in HYBRID:
        config = _hybrid_config(family, text)
        cls = (
            tf.Qwen3_5ForConditionalGeneration
            if family == "qwen3_5"
            else tf.Qwen3_5MoeForConditionalGeneration
        )
        model = cls._from_config(config, attn_implementation=attn)
        return _randomize(model, seed, norms=True)
    elif family == "internvl":
        config = tf.InternVLConfig(
            text_config={"model_type": "qwen3", **text, "head_dim": 16},
            vision_config={
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "image_size": [112, 112] if large else [48, 48],
                "patch_size": [8, 8],
            },
            image_token_id=IMAGE,
            downsample_ratio=0.5,
            tie_word_embeddings=False,
        )
        cls = tf.InternVLForConditionalGeneration
    else:
        vision = {"depth": 2, "num_heads": 2, "in_channels": 3, "patch_size": 8, "spatial_merge_size": 2}
        vision["temporal_patch_size"] = 2
        if family == "qwen2_vl":
            vision.update(embed_dim=32, hidden_size=64, mlp_ratio=2)
            config_cls, cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
        else:
            vision.update(hidden_size=32, out_hidden_size=64, intermediate_size=64, window_size=32)
            vision.update(fullatt_block_indexes=[1], tokens_per_second=2)
            config_cls, cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
        config = config_cls(
            text_config={**text, "rope_parameters": QWEN_ROPE},
            vision_config=vision,
            image_token_id=IMAGE,
            video_token_id=VIDEO,
            vision_start_token_id=VSTART,
            vision_end_token_id=VEND,
            tie_word_embeddings=False,
        )
    model = cls._from_config(config, attn_implementation=attn)
    return _randomize(model, seed)


def _hybrid_config(family: str, text: dict):
    """Qwen3.5 (dense or MoE): Gated DeltaNet layers with a full-attention layer every
    ``full_attention_interval=4`` (layers 3, 7, ...), gated queries, partial rotary (a quarter of a
    32-wide head: M-RoPE sections [2, 1, 1]), ``rms_norm_eps`` 1e-3 (at 1e-6 the gated norm turns
    fp32 rounding into ~1e-5 logit noise); the Qwen3-VL vision tower without DeepStack."""
    import transformers as tf

    hybrid = {
        **text,
        "head_dim": 32,
        "rms_norm_eps": 1e-3,
        "full_attention_interval": 4,
        "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 16,
        "linear_value_head_dim": 16,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.25,
            "mrope_section": [2, 1, 1],
            "mrope_interleaved": True,
        },
    }
    if family == "qwen3_5_moe":
        hybrid.update(
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=32,
        )
    vision = {
        "depth": 2,
        "num_heads": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "out_hidden_size": 64,
        "patch_size": 8,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 64,
    }
    config_cls = tf.Qwen3_5Config if family == "qwen3_5" else tf.Qwen3_5MoeConfig
    return config_cls(
        text_config=hybrid,
        vision_config=vision,
        image_token_id=IMAGE,
        video_token_id=VIDEO,
        vision_start_token_id=VSTART,
        vision_end_token_id=VEND,
        tie_word_embeddings=False,
    )


@dataclass
class VideoInputs:
    """Processor-like inputs of one prompt ``[sys, video, suffix]`` and where its video sits."""

    inputs: dict
    grid: tuple[int, int, int]
    span_start: int
    family: str

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    def extended(self, question: torch.Tensor) -> VideoInputs:
        """The same prompt followed by ``question`` ``[q]`` text tokens."""
        inputs = dict(self.inputs)
        inputs["input_ids"] = torch.cat([self.input_ids, question[None]], dim=1)
        if "mm_token_type_ids" in inputs:
            zeros = torch.zeros(1, question.numel(), dtype=inputs["mm_token_type_ids"].dtype)
            inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], zeros], dim=1)
        return VideoInputs(inputs, self.grid, self.span_start, self.family)


def text_tokens(n: int, seed: int) -> torch.Tensor:
    """``[n]`` random ordinary token ids (no special ids)."""
    return torch.randint(10, TEXT["vocab_size"], (n,), generator=torch.Generator().manual_seed(seed))


def make_inputs(
    family: str,
    seed: int = 0,
    sys_len: int = 6,
    suffix_len: int = 4,
    large: bool = False,
    static: bool = False,
) -> VideoInputs:
    """Inputs with a random video: LLaVA-OV 4 frames -> grid (4, 3, 3) + 1 newline; Qwen2-VL grid
    (2, 3, 5); Qwen2.5-VL grid (4, 3, 5) (temporal ids exceed the spatial ones).

    ``large``: grids (4, 7, 7) for LLaVA-OV (needs ``build_model(large=True)``) and (gt, 7, 11) for
    Qwen. ``static``: every frame (LLaVA) / temporal patch (Qwen) repeats the first one.
    """
    gen = torch.Generator().manual_seed(seed + 100)
    sys_ids, suffix = text_tokens(sys_len, seed + 1), text_tokens(suffix_len, seed + 2)
    if family == "llava_onevision":
        frames, side, pooled = 4, (112 if large else 48), (7 if large else 3)
        video = torch.full((frames * pooled * pooled + 1,), VIDEO)
        ids = torch.cat([sys_ids, video, suffix])[None]
        pixels = torch.randn(1, 1 if static else frames, 3, side, side, generator=gen)
        inputs = {"input_ids": ids, "pixel_values_videos": pixels.expand(1, frames, -1, -1, -1).contiguous()}
        return VideoInputs(inputs, (frames, pooled, pooled), sys_len, family)
    if family in BLOCKS:
        return _block_inputs(family, seed, sys_ids, suffix, gen, large, static)
    gt = 2 if family == "qwen2_vl" else 4
    gh, gw = (14, 22) if large else (6, 10)
    n = gt * gh * gw // 4
    video = torch.cat([torch.tensor([VSTART]), torch.full((n,), VIDEO), torch.tensor([VEND])])
    ids = torch.cat([sys_ids, video, suffix])[None]
    pixels = torch.randn(1 if static else gt, gh * gw, 3 * 2 * 8 * 8, generator=gen).expand(gt, -1, -1)
    inputs = {
        "input_ids": ids,
        "mm_token_type_ids": (ids == VIDEO).long() * 2,
        "pixel_values_videos": pixels.reshape(gt * gh * gw, -1).contiguous(),
        "video_grid_thw": torch.tensor([[gt, gh, gw]]),
    }
    if family == "qwen2_5_vl":
        inputs["second_per_grid_ts"] = torch.tensor([1.0])
    return VideoInputs(inputs, (gt, gh // 2, gw // 2), sys_len + 1, family)


def _block_inputs(family, seed, sys_ids, suffix, gen, large, static) -> VideoInputs:
    """Frame-block prompts. Qwen3-VL: per temporal patch ``<2 timestamp tokens> VSTART`` + ``h'*w'``
    video tokens + ``VEND`` (grid (4, 3, 5), or (4, 7, 11) ``large``). InternVL: per frame
    ``<2 label tokens> IMG_START`` + 9 image tokens + ``IMG_END`` (grid (4, 3, 3), or (4, 7, 7) ``large``)."""
    frames = 4
    if family == "internvl":
        side = 7 if large else INTERNVL_SIDE
        per = side * side
        start, end, token, grid = IMG_START, IMG_END, IMAGE, (frames, side, side)
    else:
        gh, gw = (14, 22) if large else (6, 10)
        per = gh * gw // 4
        start, end, token, grid = VSTART, VEND, VIDEO, (frames, gh // 2, gw // 2)
    pieces = [sys_ids]
    for b in range(frames):
        label = text_tokens(2, seed + 10 + b)
        pieces += [label, torch.tensor([start]), torch.full((per,), token), torch.tensor([end])]
    ids = torch.cat([*pieces, suffix])[None]
    first = int((ids[0] == token).nonzero()[0])
    if family == "internvl":
        px = 112 if large else 48
        pixels = torch.randn(1 if static else frames, 3, px, px, generator=gen).expand(frames, -1, -1, -1)
        return VideoInputs({"input_ids": ids, "pixel_values": pixels.contiguous()}, grid, first, family)
    gt, (gh, gw) = frames, ((14, 22) if large else (6, 10))
    pixels = torch.randn(1 if static else gt, gh * gw, 3 * 2 * 8 * 8, generator=gen).expand(gt, -1, -1)
    inputs = {
        "input_ids": ids,
        "mm_token_type_ids": (ids == VIDEO).long() * 2,
        "pixel_values_videos": pixels.reshape(gt * gh * gw, -1).contiguous(),
        "video_grid_thw": torch.tensor([[gt, gh, gw]]),
    }
    return VideoInputs(inputs, grid, first, family)
