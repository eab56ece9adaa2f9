"""Convert a LLaVA-NeXT-format checkpoint into transformers' ``LlavaOnevisionForConditionalGeneration``.

LLaVA-NeXT -> HF LlavaOnevision mapping (what the converter assumes):

- Vision tower: SigLIP. LLaVA-NeXT's SigLIP wrapper deletes the tower's last encoder layer and its
  pooling head and uses the last remaining layer's output (before ``post_layernorm``); the published
  checkpoints store only those layers (26 of so400m's 27). That equals ``hidden_states[-2]`` of the
  full tower, i.e. ``mm_vision_select_layer`` -2. The HF tower is built with ``L - 1`` layers and
  ``vision_feature_layer`` -1; stored layers beyond ``L - 1`` (and a stored head) are ignored.
  ``L`` and the geometry come from the extra key ``mm_vision_tower_config`` when present (tiny
  test checkpoints), else from the known facts of ``mm_vision_tower`` (so400m patch14 384).
- ``mm_vision_select_feature`` "patch" on a CLS-free SigLIP keeps all 729 patches: strategy "full".
- Projector ``mlp2x_gelu`` = ``linear_2(gelu(linear_1(x)))`` (exact GELU); pooling bilinear to
  ceil(h/2) x ceil(w/2) after the projector, as HF ``apply_pooling`` does.
- ``<image>``/``<video>`` are appended to the tokenizer when missing (ids = tokenizer length, inside
  the padded embedding, e.g. 151646/151647 for Qwen2-7B); the processor uses SigLIP preprocessing
  (bicubic resize to the tower size, rescale 1/255, mean = std = 0.5) and a ChatML template with
  the default system turn and ``<video>\\n`` before the text.
- Not reproduced by HF LlavaOnevision: ``mm_newline_position`` (HF appends one newline vector
  after a video; LLaVA-Video's "grid" puts one per row). It is reported in ``info``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lmms_sttm.models.checkpoints import CheckpointError, CheckpointInfo, LoadedCheckpoint

# SigLIP towers LLaVA-NeXT checkpoints name in mm_vision_tower (full towers, before the last layer
# is dropped).
KNOWN_VISION_TOWERS = {
    "google/siglip-so400m-patch14-384": {
        "hidden_size": 1152,
        "intermediate_size": 4304,
        "num_hidden_layers": 27,
        "num_attention_heads": 16,
        "image_size": 384,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    },
}
_NEXT_TOWER = "model.vision_tower.vision_tower.vision_model."
# LLaVA-NeXT parameter names -> in-memory HF LlavaOnevision names (transformers 5.x).
LLAVA_NEXT_KEY_MAPPING = {
    r"^model\.vision_tower\.vision_tower\.vision_model\.": "model.vision_tower.",
    r"^model\.mm_projector\.0\.": "model.multi_modal_projector.linear_1.",
    r"^model\.mm_projector\.2\.": "model.multi_modal_projector.linear_2.",
    r"^model\.embed_tokens\.": "model.language_model.embed_tokens.",
    r"^model\.layers\.": "model.language_model.layers.",
    r"^model\.norm\.": "model.language_model.norm.",
}


def safetensors_keys(path: Path) -> list[str]:
    """Parameter names stored in a directory's ``model.safetensors`` or sharded index."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        return sorted(json.loads(index.read_text())["weight_map"])
    single = path / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as f:
            return sorted(f.keys())
    raise CheckpointError(f"LLaVA-NeXT checkpoint {path} has no model.safetensors(.index.json)")


def vision_tower_facts(raw: dict[str, Any]) -> dict[str, Any]:
    """Full-tower SigLIP geometry: ``mm_vision_tower_config`` if present, else the named tower's facts."""
    if raw.get("mm_vision_tower_config"):
        facts = {k: v for k, v in raw["mm_vision_tower_config"].items() if k != "model_type"}
    else:
        name = raw.get("mm_vision_tower")
        if name not in KNOWN_VISION_TOWERS:
            raise CheckpointError(
                f"unknown mm_vision_tower {name!r}; known: {', '.join(KNOWN_VISION_TOWERS)} "
                "(or give its SigLIP geometry in 'mm_vision_tower_config')"
            )
        facts = dict(KNOWN_VISION_TOWERS[name])
    if raw.get("mm_hidden_size", facts["hidden_size"]) != facts["hidden_size"]:
        raise CheckpointError(
            f"mm_hidden_size {raw['mm_hidden_size']} differs from the vision tower width {facts['hidden_size']}"
        )
    return facts


def _require(raw: dict[str, Any], key: str, allowed: tuple, default: Any = None) -> Any:
    value = raw.get(key, default)
    if value not in allowed:
        raise CheckpointError(f"unsupported {key}={value!r} in LLaVA-NeXT config; supported: {allowed}")
    return value


def llava_next_hf_config(raw: dict[str, Any], stored_vision_layers: int, image_id: int, video_id: int):
    """A ``LlavaOnevisionConfig`` equivalent to a LLaVA-NeXT (Qwen2) config.

    ``stored_vision_layers``: how many tower encoder layers the checkpoint holds (must be at least
    the ``L - 1`` that LLaVA-NeXT uses).
    """
    from transformers import LlavaOnevisionConfig

    _require(raw, "mm_projector_type", ("mlp2x_gelu",))
    _require(raw, "mm_vision_select_layer", (-2,))
    _require(raw, "mm_vision_select_feature", ("patch", "cls_patch"), "patch")
    _require(raw, "mm_spatial_pool_mode", ("bilinear",), "bilinear")
    _require(raw, "mm_spatial_pool_stride", (None, 2))
    tower = vision_tower_facts(raw)
    used_layers = tower["num_hidden_layers"] - 1
    if stored_vision_layers < used_layers:
        raise CheckpointError(
            f"the checkpoint stores {stored_vision_layers} vision encoder layers; LLaVA-NeXT uses "
            f"{used_layers} of the {tower['num_hidden_layers']}-layer tower"
        )
    vocab_size = raw["vocab_size"]
    if max(image_id, video_id) >= vocab_size:
        raise CheckpointError(f"<image>/<video> ids {image_id}/{video_id} do not fit vocab_size {vocab_size}")
    rope = {"rope_type": "default", "rope_theta": raw.get("rope_theta", 10000.0)}
    if raw.get("rope_scaling"):
        scaling = dict(raw["rope_scaling"])
        scaling["rope_type"] = scaling.pop("type", scaling.get("rope_type"))
        rope.update(scaling)
    text_keys = (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "hidden_act",
        "max_position_embeddings",
        "rms_norm_eps",
        "use_sliding_window",
        "sliding_window",
        "max_window_layers",
        "attention_dropout",
        "bos_token_id",
        "eos_token_id",
        "initializer_range",
    )
    text = {k: raw[k] for k in text_keys if k in raw}
    aspect = raw.get("image_aspect_ratio") or ""
    return LlavaOnevisionConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            **tower,
            "num_hidden_layers": used_layers,
            "vision_use_head": False,
        },
        text_config={"model_type": "qwen2", **text, "rope_parameters": rope, "tie_word_embeddings": False},
        image_token_index=image_id,
        video_token_index=video_id,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=raw.get("image_grid_pinpoints"),
        vision_aspect_ratio=aspect if re.fullmatch(r"anyres_max_\d+", aspect) else "anyres_max_9",
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
    )


def _llava_next_tokenizer(path: Path):
    """The checkpoint's Qwen2 tokenizer with ``<image>``/``<video>`` appended when missing.

    The class named in ``tokenizer_config.json`` is used directly: ``AutoTokenizer`` (5.23) sees
    ``model_type`` "llava" in config.json and falls back to a generic backend that needs a
    ``tokenizer.json``, which the lmms-lab repos do not ship (only vocab.json + merges.txt).
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    tok_cfg = path / "tokenizer_config.json"
    class_name = json.loads(tok_cfg.read_text()).get("tokenizer_class") if tok_cfg.is_file() else None
    tokenizer_cls = tokenizer_class_from_name(class_name) if class_name else None
    if tokenizer_cls is None:
        tokenizer_cls = AutoTokenizer
    tokenizer = tokenizer_cls.from_pretrained(str(path))
    for token in ("<image>", "<video>"):
        if token not in tokenizer.get_vocab():
            tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)], special_tokens=True)
    return tokenizer


def llava_next_processor(tokenizer, hf_config):
    """``LlavaOnevisionProcessor`` with SigLIP preprocessing at the tower's image size."""
    from transformers import (
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    from lmms_sttm.data.chat_templates import LLAVA_CHAT_TEMPLATE

    vision = hf_config.vision_config
    common = {
        "size": {"height": vision.image_size, "width": vision.image_size},
        "resample": 3,  # bicubic, as SigLipImageProcessor
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    image_processor = LlavaOnevisionImageProcessor(
        image_grid_pinpoints=hf_config.image_grid_pinpoints, do_pad=True, **common
    )
    return LlavaOnevisionProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(**common),
        num_image_tokens=(vision.image_size // vision.patch_size) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_CHAT_TEMPLATE,
        vision_aspect_ratio=hf_config.vision_aspect_ratio,
    )


def _check_loading(info: dict[str, Any], used_layers: int, where: Path) -> None:
    """Raise unless every model weight was loaded and only unused tower parts were left over."""
    ignorable = re.compile(r"^model\.vision_tower\.(head\.|encoder\.layers\.(\d+)\.)")

    def unused(key: str) -> bool:
        m = ignorable.match(key)
        return bool(m) and (m.group(2) is None or int(m.group(2)) >= used_layers)

    problems = []
    if info["missing_keys"]:
        problems.append(f"missing {sorted(info['missing_keys'])}")
    if info["mismatched_keys"]:
        problems.append(f"shape mismatches {sorted(info['mismatched_keys'])}")
    extra = sorted(k for k in info["unexpected_keys"] if not unused(k))
    if extra:
        problems.append(f"unexpected {extra}")
    if info.get("error_msgs"):
        problems.append(f"errors {info['error_msgs']}")
    if problems:
        raise CheckpointError(f"converting LLaVA-NeXT checkpoint {where} failed: " + "; ".join(problems))


def load_llava_next(path: Path, raw: dict[str, Any], kwargs: dict[str, Any], source: str) -> LoadedCheckpoint:
    from transformers import LlavaOnevisionForConditionalGeneration

    keys = safetensors_keys(path)
    layer_ids = {
        int(m.group(1))
        for k in keys
        if (m := re.match(re.escape(_NEXT_TOWER) + r"encoder\.layers\.(\d+)\.", k))
    }
    tokenizer = _llava_next_tokenizer(path)
    image_id, video_id = (
        tokenizer.convert_tokens_to_ids("<image>"),
        tokenizer.convert_tokens_to_ids("<video>"),
    )
    config = llava_next_hf_config(raw, len(layer_ids), image_id, video_id)
    config.text_config.pad_token_id = tokenizer.pad_token_id
    model, loading = LlavaOnevisionForConditionalGeneration.from_pretrained(
        str(path), config=config, key_mapping=LLAVA_NEXT_KEY_MAPPING, output_loading_info=True, **kwargs
    )
    _check_loading(loading, config.vision_config.num_hidden_layers, path)
    mm_keys = ("mm_", "image_", "add_", "force_sample", "faster_token_stride")
    info = CheckpointInfo(
        source=source,
        format="llava_next",
        model_type="llava_onevision",
        newline_position=raw.get("mm_newline_position", "one_token"),
        spatial_pool_mode=raw.get("mm_spatial_pool_mode", "bilinear"),
        spatial_pool_stride=raw.get("mm_spatial_pool_stride") or 2,
        add_time_instruction=bool(raw.get("add_time_instruction", False)),
        force_sample=bool(raw.get("force_sample", False)),
        mm_config={k: v for k, v in raw.items() if k.startswith(mm_keys)},
    )
    return LoadedCheckpoint(model.eval(), llava_next_processor(tokenizer, config), info)
