"""Tiny random LLaVA checkpoints: HF LLaVA-OneVision format and the LLaVA-NeXT on-disk format.

Tower geometry: SigLIP, patch 8 on 104x104 frames -> 13x13 = 169 patches (odd, like so400m's
27x27); after the projector, bilinear pooling to ceil(13/2) = 7 -> 7x7 = 49 tokens per frame, so
the STTM quadtree has levels 7x7 -> 4x4 -> 2x2. An F-frame video gives F*49 (+1 newline) tokens.

- ``llava_onevision``: as ``llava-hf/llava-onevision-qwen2-7b-ov-hf`` (HF classes, 2 tower layers,
  ``vision_feature_layer`` -1, strategy ``full``, ``<image>``/``<video>`` in the tokenizer).
- ``llava_video``: as ``lmms-lab/LLaVA-Video-7B-Qwen2``: ``LlavaQwenForCausalLM`` config with the
  ``mm_*`` keys, LLaVA-NeXT parameter names, Qwen2 vocab/merges tokenizer files without
  ``<image>``/``<video>`` (LLaVA-NeXT inserts the image index -200 into input ids instead), no HF
  processor files. The tower is a 3-layer SigLIP of which only the first 2 layers are on disk: like
  the real checkpoint (27-layer so400m, 26 stored), because LLaVA-NeXT's SigLIP wrapper deletes the
  last encoder layer and the head. The tiny tower's geometry is in the extra key
  ``mm_vision_tower_config`` (real checkpoints lack it; loaders then use so400m's facts).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from lmms_sttm.data.chat_templates import LLAVA_CHAT_TEMPLATE, TEXT_CHAT_TEMPLATE
from lmms_sttm.data.tiny_common import (
    ROPE_THETA,
    SEED,
    VISION_HIDDEN,
    padded_vocab_size,
    qwen2_text_kwargs,
    randomize_parameters,
    save_hf_processor,
)
from lmms_sttm.data.tiny_tokenizer import (
    CHATML_SPECIAL_TOKENS,
    LLAVA_VISION_TOKENS,
    build_qwen2_tokenizer,
    write_vocab_merges_layout,
)

IMAGE_SIZE = 104
PATCH = 8
PATCH_GRID = IMAGE_SIZE // PATCH  # 13
POOLED_GRID = -(-PATCH_GRID // 2)  # 7
TOKENS_PER_FRAME = POOLED_GRID * POOLED_GRID  # 49
TOWER_LAYERS_FULL = 3  # the tiny "so400m": LLaVA-NeXT keeps the first TOWER_LAYERS_FULL - 1
PINPOINTS = [[IMAGE_SIZE * i, IMAGE_SIZE * j] for i in (1, 2, 3) for j in (1, 2, 3)]
SIGLIP_MEAN = SIGLIP_STD = [0.5, 0.5, 0.5]
TINY_TOWER_NAME = "tiny-random-siglip-patch8-104"

# In-memory HF LlavaOnevision parameter names (transformers 5.x: the SigLIP tower has no
# ``vision_model`` level) -> LLaVA-NeXT names (the inverse of the loader's mapping).
_HF_TO_LLAVA_NEXT = [
    (r"^model\.language_model\.", "model."),
    (r"^model\.vision_tower\.", "model.vision_tower.vision_tower.vision_model."),
    (r"^model\.multi_modal_projector\.linear_1\.", "model.mm_projector.0."),
    (r"^model\.multi_modal_projector\.linear_2\.", "model.mm_projector.2."),
]


def tower_config(num_hidden_layers: int) -> dict:
    """The tiny SigLIP vision config (HF ``SiglipVisionConfig`` fields)."""
    return {
        "model_type": "siglip_vision_model",
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_hidden_layers": num_hidden_layers,
        "num_attention_heads": 2,
        "num_channels": 3,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "vision_use_head": False,
    }


def _random_onevision_model(vocab_size: int, bos_id: int, eos_id: int, image_id: int, video_id: int):
    """A seeded ``LlavaOnevisionForConditionalGeneration`` with a 2-layer tiny SigLIP tower."""
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    config = LlavaOnevisionConfig(
        vision_config=tower_config(TOWER_LAYERS_FULL - 1),
        text_config={"model_type": "qwen2", **qwen2_text_kwargs(vocab_size, bos_id, eos_id)},
        image_token_index=image_id,
        video_token_index=video_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=PINPOINTS,
        vision_aspect_ratio="anyres_max_9",
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    randomize_parameters(model)
    return model


def onevision_processor_parts():
    """(image_processor, video_processor) with SigLIP preprocessing at the tiny tower's size."""
    from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionVideoProcessor

    common = {
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "resample": 3,
        "image_mean": SIGLIP_MEAN,
        "image_std": SIGLIP_STD,
    }
    image_processor = LlavaOnevisionImageProcessor(image_grid_pinpoints=PINPOINTS, do_pad=True, **common)
    return image_processor, LlavaOnevisionVideoProcessor(**common)


def build_llava_onevision(out_dir: Path) -> Path:
    """Write a tiny HF-format ``llava_onevision`` checkpoint to ``out_dir``."""
    from transformers import LlavaOnevisionProcessor

    specials = CHATML_SPECIAL_TOKENS + LLAVA_VISION_TOKENS
    tokenizer = build_qwen2_tokenizer(
        specials, chat_template=LLAVA_CHAT_TEMPLATE, image_token="<image>", video_token="<video>"
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    model = _random_onevision_model(
        padded_vocab_size(len(tokenizer)),
        ids["<|endoftext|>"],
        ids["<|im_end|>"],
        ids["<image>"],
        ids["<video>"],
    )
    image_processor, video_processor = onevision_processor_parts()
    processor = LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        num_image_tokens=PATCH_GRID * PATCH_GRID,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_CHAT_TEMPLATE,
        vision_aspect_ratio="anyres_max_9",
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    save_hf_processor(processor, out_dir)
    return out_dir


def _llava_next_name(hf_name: str) -> str:
    for pattern, repl in _HF_TO_LLAVA_NEXT:
        if re.match(pattern, hf_name):
            return re.sub(pattern, repl, hf_name, count=1)
    if hf_name in ("model.image_newline", "lm_head.weight"):
        return hf_name
    raise KeyError(f"no LLaVA-NeXT name for parameter {hf_name!r}")


def _llava_video_config(vocab_size: int, bos_id: int, eos_id: int, image_id: int) -> dict:
    """config.json in the LLaVA-NeXT layout of lmms-lab/LLaVA-Video-7B-Qwen2 (tiny numbers)."""
    text = qwen2_text_kwargs(vocab_size, bos_id, eos_id)
    text.pop("rope_parameters")
    text.pop("pad_token_id")
    return {
        "architectures": ["LlavaQwenForCausalLM"],
        "model_type": "llava",
        **text,
        "rope_theta": ROPE_THETA,
        "rope_scaling": None,
        "sliding_window": 32768,
        "initializer_range": 0.02,
        "use_cache": True,
        "torch_dtype": "float32",
        "transformers_version": "4.40.0.dev0",
        "tokenizer_model_max_length": 32768,
        "tokenizer_padding_side": "right",
        "image_token_index": image_id,
        "image_aspect_ratio": "anyres_max_9",
        "image_grid_pinpoints": PINPOINTS,
        "image_crop_resolution": None,
        "image_split_resolution": None,
        "mm_vision_tower": TINY_TOWER_NAME,
        "mm_vision_tower_config": tower_config(TOWER_LAYERS_FULL),
        "mm_hidden_size": VISION_HIDDEN,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None,
        "mm_spatial_pool_mode": "bilinear",
        "mm_spatial_pool_stride": 2,
        "mm_newline_position": "grid",
        "mm_patch_merge_type": "spatial_unpad",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "mm_tunable_parts": "mm_vision_tower,mm_mlp_adapter,mm_language_model",
        "use_mm_proj": True,
        "vision_tower_pretrained": None,
        "add_time_instruction": True,
        "force_sample": True,
        "add_faster_video": False,
        "faster_token_stride": 10,
        "use_pos_skipping": False,
        "pos_skipping_range": 4096,
    }


def build_llava_video(out_dir: Path) -> Path:
    """Write a tiny LLaVA-NeXT-format ``llava_video`` checkpoint to ``out_dir``."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    num_tokens = write_vocab_merges_layout(out_dir, CHATML_SPECIAL_TOKENS, TEXT_CHAT_TEMPLATE)
    bos_id, eos_id = num_tokens - 3, num_tokens - 1  # <|endoftext|>, <|im_end|>
    # <image>/<video> are not in the tokenizer; loaders append them at ids num_tokens, num_tokens + 1,
    # inside the padded embedding (as 151646/151647 in the real 152064-row Qwen2 embedding).
    vocab_size = padded_vocab_size(num_tokens)
    model = _random_onevision_model(vocab_size, bos_id, eos_id, num_tokens, num_tokens + 1)
    tensors = {_llava_next_name(k): v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    config = _llava_video_config(vocab_size, bos_id, eos_id, num_tokens)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    generation = {"bos_token_id": bos_id, "eos_token_id": eos_id, "pad_token_id": bos_id}
    (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return out_dir
