"""Tiny random Qwen3-VL checkpoints in HF format: dense (as ``Qwen/Qwen3-VL-8B-Instruct``) and MoE
(as ``Qwen/Qwen3-VL-30B-A3B-Instruct``).

Geometry (as :mod:`lmms_sttm.data.tiny_qwen`): patch 8, 2x2 merge, temporal patch 2. A 112x176
frame is kept at its size and gives a 14x22 patch grid -> a 7x11 merged grid per temporal patch.
An F-frame video gives ``video_grid_thw = [[F/2, 14, 22]]`` and F/2 blocks, each written by
``Qwen3VLProcessor`` as ``<{t:.1f} seconds><|vision_start|>`` + 77 ``<|video_pad|>`` +
``<|vision_end|>`` (t = the mean time of the block's two frames, from the video metadata's fps and
frame indices), so ``F/2 * 77`` video tokens (308 for 8 frames).

Text decoder: Qwen3-style (``q_norm``/``k_norm``, explicit ``head_dim``), hidden 64, 6 layers,
4 query heads, 2 key/value heads, head_dim 16, interleaved M-RoPE with ``mrope_section``
[4, 2, 2] (8 = head_dim/2 frequencies: H takes 1,4, W takes 2,5, T the rest, the interleaved
layout of the real [24, 20, 20]). Vision tower: 3 blocks; DeepStack on with
``vision_config.deepstack_visual_indexes = [0, 1, 2]``: the features after vision blocks 0, 1, 2
(each through its own ``deepstack_merger_list`` merger) are added to the visual positions after
LLM layers 0, 1, 2. MoE: every layer sparse, 4 experts of width 24, top-2 (normalised weights);
the fused expert tensors are stored as published (``experts.gate_up_proj`` [E, hidden, 2*width],
``experts.down_proj`` [E, width, hidden]; transformers transposes them on load).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import QWEN3_VL_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import (
    SEED,
    TEXT_HIDDEN,
    TEXT_INTERMEDIATE,
    VISION_HIDDEN,
    padded_vocab_size,
    qwen3_text_kwargs,
    randomize_parameters,
    save_hf_processor,
)
from lmms_sttm.data.tiny_tokenizer import CHATML_SPECIAL_TOKENS, QWEN_VISION_TOKENS, build_qwen2_tokenizer

PATCH = 8
MERGE = 2
TEMPORAL_PATCH = 2
FRAME_HEIGHT, FRAME_WIDTH = 112, 176  # default test frame size -> 7x11 merged grid
MERGED_GRID = (FRAME_HEIGHT // (PATCH * MERGE), FRAME_WIDTH // (PATCH * MERGE))
VISION_DEPTH = 3
DEEPSTACK_VISUAL_INDEXES = [0, 1, 2]
MROPE_SECTION = [4, 2, 2]  # sums to head_dim / 2 = 8
NUM_EXPERTS, EXPERTS_PER_TOKEN, EXPERT_INTERMEDIATE = 4, 2, 24  # 2*24 != 64: no square expert matrix
_FACTOR = PATCH * MERGE
# Pixel bounds scaled from the published ones (factor 32 -> 16, i.e. the same merged-token counts):
# images 64..16384 merged tokens; videos 4..24576 merged tokens in all, at most 768 per frame
# (``cap_pixels_per_frame``, as qwen-vl-utils); 112x176 = 77 tokens per frame stays unresized.
IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS = 64 * _FACTOR**2, 16384 * _FACTOR**2
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 4 * _FACTOR**2, 24576 * _FACTOR**2
VIDEO_MAX_TOKENS_PER_FRAME = 768
QWEN3_VL_MEAN = QWEN3_VL_STD = [0.5, 0.5, 0.5]


def _vision_config() -> dict:
    return {
        "depth": VISION_DEPTH,
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
        "out_hidden_size": TEXT_HIDDEN,
        "num_position_embeddings": 256,  # a 16x16 learned grid, bilinearly resampled to each image
        "deepstack_visual_indexes": DEEPSTACK_VISUAL_INDEXES,
        "hidden_act": "gelu_pytorch_tanh",
    }


def _text_config(arch: str, vocab_size: int, bos_id: int, eos_id: int) -> dict:
    text = qwen3_text_kwargs(vocab_size, bos_id, eos_id)
    text["rope_parameters"] = {
        **text["rope_parameters"],
        "rope_theta": 5_000_000.0,
        "mrope_section": MROPE_SECTION,
        "mrope_interleaved": True,
    }
    if arch == "qwen3_vl_moe":
        text.update(
            num_experts=NUM_EXPERTS,
            num_experts_per_tok=EXPERTS_PER_TOKEN,
            moe_intermediate_size=EXPERT_INTERMEDIATE,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            norm_topk_prob=True,
            intermediate_size=TEXT_INTERMEDIATE,
        )
    return text


def vision_language_config(config_cls, text: dict, vision: dict, ids: dict):
    """A Qwen3-VL-layout config (Qwen3-VL, Qwen3.5) with the tokenizer's placeholder ids ``ids``."""
    return config_cls(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def qwen3_vl_processor(tokenizer, chat_template: str):
    """The tiny checkpoints' ``Qwen3VLProcessor`` (Qwen3-VL and Qwen3.5 share it): patch 8, 2x2 merge,
    temporal patch 2, the video pixel budgets above, frames sampled by the caller."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    geometry = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL_PATCH}
    normalise = {"image_mean": QWEN3_VL_MEAN, "image_std": QWEN3_VL_STD}
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": IMAGE_MIN_PIXELS, "longest_edge": IMAGE_MAX_PIXELS}, **geometry, **normalise
    )
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS},
        cap_pixels_per_frame=True,
        max_video_tokens=VIDEO_MAX_TOKENS_PER_FRAME,
        do_sample_frames=False,
        **geometry,
        **normalise,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template,
    )


def build_qwen3_vl(arch: str, out_dir: Path) -> Path:
    """Write a tiny ``qwen3_vl`` or ``qwen3_vl_moe`` checkpoint (model, tokenizer, processors) to ``out_dir``."""
    from transformers import (
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLMoeConfig,
        Qwen3VLMoeForConditionalGeneration,
    )

    classes = {
        "qwen3_vl": (Qwen3VLConfig, Qwen3VLForConditionalGeneration),
        "qwen3_vl_moe": (Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration),
    }
    config_cls, model_cls = classes[arch]

    specials = CHATML_SPECIAL_TOKENS + QWEN_VISION_TOKENS
    tokenizer = build_qwen2_tokenizer(
        specials,
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    text = _text_config(arch, padded_vocab_size(len(tokenizer)), ids["<|endoftext|>"], ids["<|im_end|>"])
    config = vision_language_config(config_cls, text, _vision_config(), ids)
    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    randomize_parameters(model)

    processor = qwen3_vl_processor(tokenizer, QWEN3_VL_CHAT_TEMPLATE)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    if arch == "qwen3_vl_moe":
        _store_experts_as_published(out_dir / "model.safetensors")
    save_hf_processor(processor, out_dir)
    return out_dir


def _store_experts_as_published(path: Path) -> None:
    """Rewrite the fused expert tensors in the hub layout (transformers 5 saves its in-memory one).

    In memory ``gate_up_proj`` is [E, 2*width, hidden] and ``down_proj`` [E, hidden, width]; the
    published Qwen3-VL-MoE files hold their transposes (the layout of the original bmm experts).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    for name, tensor in tensors.items():
        if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            tensors[name] = tensor.transpose(1, 2).contiguous()
    save_file(tensors, str(path), metadata=metadata)
