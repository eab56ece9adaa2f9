"""Model families the engine knows, keyed by ``config.model_type``.

A family says where the text decoder sits inside the model instance, which module receives the
``input_ids`` (to find the video placeholders), which placeholder id marks video tokens, and how
positions of the reduced segment are formed:

- ``"reassign"`` (LLaVA-OneVision / LLaVA-Video, plain Qwen2): 1-D RoPE, the reduced sequence is
  renumbered ``0..N'-1``.
- ``"survive"`` (Qwen2-VL, Qwen2.5-VL): 3-D M-RoPE, every kept token keeps the original id of its
  representative; text keeps its ids.

An unknown ``model_type`` raises: a silent no-op would put the unreduced model in a reduced row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

Grid = tuple[int, int, int]


@dataclass(frozen=True)
class Family:
    """How one architecture is patched.

    Attributes:
        model_type: ``config.model_type`` of the top-level model.
        text_model_type: ``model_type`` of the decoder's config this family was written against.
        position_mode: ``"reassign"`` or ``"survive"`` (see module docstring).
        multimodal: the text decoder sits at ``model.model.language_model`` (else ``model.model``).
        extra_video_tokens: placeholders after the grid that belong to the video run but not to the
            grid (LLaVA-OneVision appends one ``image_newline``); they stay ordinary tokens.
    """

    model_type: str
    text_model_type: str
    position_mode: str
    multimodal: bool
    extra_video_tokens: tuple[int, ...] = (0,)

    def text_model(self, model: nn.Module) -> nn.Module:
        """The decoder stack (has ``layers``, ``rotary_emb``, ``config``)."""
        base = self.ids_module(model)
        text = getattr(base, "language_model", None) if self.multimodal else base
        if text is None or not hasattr(text, "layers") or not hasattr(text, "rotary_emb"):
            raise TypeError(
                f"{type(model).__name__} has no text decoder where family {self.model_type!r} expects it"
            )
        return text

    def ids_module(self, model: nn.Module) -> nn.Module:
        """The module whose forward receives ``input_ids`` (the multimodal base model or the text model)."""
        if self.multimodal:
            inner = getattr(model, "model", None)
            if inner is not None and hasattr(inner, "language_model"):
                return inner
            if hasattr(model, "language_model"):
                return model
            raise TypeError(f"{type(model).__name__} has no multimodal base model with a language_model")
        inner = getattr(model, "model", None)
        return inner if inner is not None and hasattr(inner, "layers") else model

    def video_token_id(self, model: nn.Module) -> int | None:
        """Placeholder id of video tokens, or None for text-only decoders."""
        if not self.multimodal:
            return None
        config = model.config
        for name in ("video_token_id", "video_token_index"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise ValueError(f"config of {self.model_type!r} has no video_token_id / video_token_index")

    def grid_from_inputs(self, model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
        """The video's token grid ``(T, H, W)`` as the decoder sees it, from processor outputs.

        Qwen2-VL / 2.5-VL: ``video_grid_thw`` with ``h, w`` divided by ``spatial_merge_size``.
        LLaVA-OneVision: ``pixel_values_videos`` ``[1, F, 3, S, S]`` -> ``(F, ceil(S/p/2), ceil(S/p/2))``,
        the bilinear 2x pooling of ``apply_pooling``.
        """
        config = model.config
        if self.model_type in ("qwen2_vl", "qwen2_5_vl"):
            thw = inputs.get("video_grid_thw")
            if thw is None or thw.shape[0] != 1:
                raise ValueError("need video_grid_thw for exactly one video")
            merge = config.vision_config.spatial_merge_size
            t, h, w = (int(v) for v in thw[0])
            return (t, h // merge, w // merge)
        if self.model_type == "llava_onevision":
            pixels = inputs.get("pixel_values_videos")
            if pixels is None or pixels.shape[0] != 1:
                raise ValueError("need pixel_values_videos for exactly one video")
            side = math.ceil(config.vision_config.image_size // config.vision_config.patch_size / 2)
            return (int(pixels.shape[1]), side, side)
        raise ValueError(f"family {self.model_type!r} has no vision inputs; pass the grid explicitly")


FAMILIES: dict[str, Family] = {
    "llava_onevision": Family(
        "llava_onevision", "qwen2", "reassign", multimodal=True, extra_video_tokens=(0, 1)
    ),
    "qwen2_vl": Family("qwen2_vl", "qwen2_vl_text", "survive", multimodal=True),
    "qwen2_5_vl": Family("qwen2_5_vl", "qwen2_5_vl_text", "survive", multimodal=True),
    # Text-only Qwen2 decoder (benchmarks, LLaVA's language model on its own): the caller gives the span.
    "qwen2": Family("qwen2", "qwen2", "reassign", multimodal=False),
}


def family_of(model: nn.Module) -> Family:
    """The family of ``model`` by ``config.model_type``; raises ``ValueError`` for unknown types."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(
            f"no token-reduction support for model_type {model_type!r}; known: {sorted(FAMILIES)}"
        )
    return FAMILIES[model_type]
