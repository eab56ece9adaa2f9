"""Tiny random Qwen2-VL / Qwen2.5-VL checkpoints in HF format (as ``Qwen/Qwen2-VL-7B-Instruct``).

Geometry: patch 8, 2x2 merge, temporal patch 2. A 112x176 frame is kept at its size (multiples of
16; pixel bounds below) and gives a 14x22 patch grid -> a 7x11 merged grid per temporal patch:
odd and non-square, like 13x23 for the real model at 364x644. An F-frame video gives
``video_grid_thw = [[F/2, 14, 22]]`` and ``F/2 * 7 * 11`` video tokens (308 for 8 frames).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import QWEN2_VL_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import (
    SEED,
    TEXT_HIDDEN,
    VISION_HIDDEN,
    padded_vocab_size,
    qwen2_text_kwargs,
    randomize_parameters,
    save_hf_processor,
)
from lmms_sttm.data.tiny_tokenizer import CHATML_SPECIAL_TOKENS, QWEN_VISION_TOKENS, build_qwen2_tokenizer

PATCH = 8
MERGE = 2
TEMPORAL_PATCH = 2
FRAME_HEIGHT, FRAME_WIDTH = 112, 176  # default test frame size -> 7x11 merged grid
MERGED_GRID = (FRAME_HEIGHT // (PATCH * MERGE), FRAME_WIDTH // (PATCH * MERGE))
_FACTOR = PATCH * MERGE
# Pixel bounds scaled from the real ones (factor 28 -> 16): images 4..1280 merged tokens,
# videos 16..256 merged tokens per temporal patch; 112x176 = 77 tokens stays unresized.
IMAGE_MIN_PIXELS, IMAGE_MAX_PIXELS = 4 * _FACTOR**2, 1280 * _FACTOR**2
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 16 * _FACTOR**2, 256 * _FACTOR**2
MROPE_SECTION = [2, 3, 3]  # sums to head_dim / 2 = 64 / 4 / 2


def _vision_config(arch: str) -> dict:
    common = {
        "depth": 2,
        "num_heads": 2,
        "in_channels": 3,
        "patch_size": PATCH,
        "spatial_merge_size": MERGE,
        "temporal_patch_size": TEMPORAL_PATCH,
    }
    if arch == "qwen2_vl":
        return {**common, "embed_dim": VISION_HIDDEN, "hidden_size": TEXT_HIDDEN, "mlp_ratio": 2}
    # Qwen2.5-VL: window attention (window 64 px = 4x4 merged tokens, so 7x11 needs padding),
    # the last block full attention.
    return {
        **common,
        "hidden_size": VISION_HIDDEN,
        "out_hidden_size": TEXT_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "window_size": 64,
        "fullatt_block_indexes": [1],
        "tokens_per_second": 2,
    }


def build_qwen_vl(arch: str, out_dir: Path) -> Path:
    """Write a tiny ``qwen2_vl`` or ``qwen2_5_vl`` checkpoint (model, tokenizer, processors) to ``out_dir``."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    classes = {
        "qwen2_vl": (Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor),
        "qwen2_5_vl": (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor),
    }
    config_cls, model_cls, processor_cls = classes[arch]

    specials = CHATML_SPECIAL_TOKENS + QWEN_VISION_TOKENS
    tokenizer = build_qwen2_tokenizer(
        specials,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
        image_token="<|image_pad|>",
        video_token="<|video_pad|>",
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    text = qwen2_text_kwargs(padded_vocab_size(len(tokenizer)), ids["<|endoftext|>"], ids["<|im_end|>"])
    text["rope_parameters"] = {**text["rope_parameters"], "mrope_section": MROPE_SECTION}
    config = config_cls(
        text_config=text,
        vision_config=_vision_config(arch),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = model_cls(config).eval()
    randomize_parameters(model)

    geometry = {"patch_size": PATCH, "merge_size": MERGE, "temporal_patch_size": TEMPORAL_PATCH}
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": IMAGE_MIN_PIXELS, "longest_edge": IMAGE_MAX_PIXELS}, **geometry
    )
    video_processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": VIDEO_MIN_PIXELS, "longest_edge": VIDEO_MAX_PIXELS},
        cap_pixels_per_frame=True,
        do_sample_frames=False,
        **geometry,
    )
    processor = processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_hf_processor(processor, out_dir)
    return out_dir
