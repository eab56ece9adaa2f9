"""Tiny random InternVL3.5 checkpoint in HF format (as ``OpenGVLab/InternVL3_5-8B-HF``).

``InternVLForConditionalGeneration`` with a Qwen3 text config (``model_type`` ``qwen3``: q/k RMS
norms, hidden 64, 6 layers, 4 query heads, 2 key/value heads, head_dim 16, 1-D RoPE) and a tiny
InternViT tower (2 layers, width 32, layer scale, q/k/v biases, a CLS token that the
``"default"`` feature strategy drops).

Geometry: every frame is resized to 112x112 (the real model: 448x448), patch 8 -> a 14x14 patch
grid; pixel shuffle with ``downsample_ratio`` 0.5 (as the real one) -> a 7x7 grid, so 49 tokens
per frame: odd, like the 7x7 of the tiny LLaVA (the real model: 32x32 -> 16x16 = 256). The
processor writes an F-frame video as F lines joined by ``\\n``:
``Frame{i}: <img>`` + 49 ``<IMG_CONTEXT>`` + ``</img>`` (i = 1..F), i.e. F*49 placeholder tokens
(``config.image_token_id``); frames are images to the model (``pixel_values`` [F, 3, 112, 112]).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import INTERNVL_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import (
    SEED,
    VISION_HIDDEN,
    padded_vocab_size,
    qwen3_text_kwargs,
    randomize_parameters,
    save_hf_processor,
)
from lmms_sttm.data.tiny_tokenizer import CHATML_SPECIAL_TOKENS, INTERNVL_VISION_TOKENS, build_qwen2_tokenizer

IMAGE_SIZE = 112
PATCH = 8
DOWNSAMPLE_RATIO = 0.5
PATCH_GRID = IMAGE_SIZE // PATCH  # 14
MERGED_GRID = int(PATCH_GRID * DOWNSAMPLE_RATIO)  # 7
TOKENS_PER_FRAME = MERGED_GRID * MERGED_GRID  # 49
VISION_LAYERS = 2
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# The tokenizer's named tokens, as the -HF conversion writes them (``<video>`` is text the processor
# replaces before tokenising, not a vocabulary token).
NAMED_TOKENS = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}


def _vision_config() -> dict:
    """The tiny InternViT (HF ``InternVLVisionConfig`` fields, InternViT-300M's choices)."""
    return {
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_hidden_layers": VISION_LAYERS,
        "num_attention_heads": 2,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "patch_size": [PATCH, PATCH],
        "num_channels": 3,
        "attention_bias": True,
        "use_qk_norm": False,
        "norm_type": "layer_norm",
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
        "layer_scale_init_value": 0.1,
        "use_absolute_position_embeddings": True,
        "use_mean_pooling": True,
        "use_mask_token": False,
    }


def build_internvl3_5(out_dir: Path) -> Path:
    """Write a tiny HF-format ``internvl3_5`` checkpoint (model, tokenizer, processors) to ``out_dir``."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    specials = CHATML_SPECIAL_TOKENS + INTERNVL_VISION_TOKENS
    tokenizer = build_qwen2_tokenizer(
        specials, chat_template=INTERNVL_CHAT_TEMPLATE, extra_special_tokens=NAMED_TOKENS
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    text = {
        "model_type": "qwen3",
        **qwen3_text_kwargs(padded_vocab_size(len(tokenizer)), ids["<|endoftext|>"], ids["<|im_end|>"]),
    }
    text.update(use_sliding_window=False, max_window_layers=text["num_hidden_layers"])
    config = InternVLConfig(
        vision_config=_vision_config(),
        text_config=text,
        image_token_id=ids["<IMG_CONTEXT>"],
        image_seq_length=TOKENS_PER_FRAME,
        downsample_ratio=DOWNSAMPLE_RATIO,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = InternVLForConditionalGeneration(config).eval()
    randomize_parameters(model)

    common = {
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 3,
        "image_mean": IMAGENET_MEAN,
        "image_std": IMAGENET_STD,
    }
    image_processor = GotOcr2ImageProcessor(crop_to_patches=False, min_patches=1, max_patches=12, **common)
    video_processor = InternVLVideoProcessor(**common)
    processor = InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        image_seq_length=TOKENS_PER_FRAME,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_hf_processor(processor, out_dir)
    return out_dir
