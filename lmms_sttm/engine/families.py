"""Model families the engine knows: one table, keyed by ``config.model_type``.

A family (one row of :data:`FAMILIES`) says everything the engine needs of an architecture:

- where the text decoder sits (``multimodal``: ``model.model.language_model``, else ``model.model``)
  and which module receives ``input_ids`` (to find the video placeholders);
- the placeholder: the config attributes naming its id (``placeholder``; InternVL calls it
  ``image_token_id``) and how it is laid out (``blocks``): one contiguous run of the whole grid
  (LLaVA, Qwen2-VL), or one run per frame block with text in between (Qwen3-VL: a timestamp and
  ``<|vision_start|>``/``<|vision_end|>`` around each temporal patch; InternVL: ``Frame{i}: <img>``
  ... ``</img>`` around each frame);
- positions (``position_mode``): ``"reassign"`` (1-D RoPE: the reduced sequence is renumbered
  ``0..N'-1``) or ``"survive"`` (M-RoPE: every kept token keeps the ids of its source token, text
  keeps its own);
- ``deepstack``: the decoder adds vision-tower features to the visual positions after its first
  layers (Qwen3-VL); the engine then applies them itself so that they follow the reduction;
- ``mask_dict``: the decoder accepts a per-layer-type mask dict (Qwen2, Qwen3 and Qwen3.5
  decoders); the others get the first segment's 4-D mask. Qwen3.5's Gated DeltaNet layers take
  ``"linear_attention"`` (None: no padding) and the full-attention layers their causal mask;
- ``grid``: how the video's token grid ``(T, H, W)`` is read from the processor outputs.

Adding an architecture is one row here. An unknown ``model_type`` raises: a silent no-op would put
the unreduced model in a reduced row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

Grid = tuple[int, int, int]


def _merged_thw(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
    """Qwen-VL: ``video_grid_thw`` ``[1, 3]`` with ``h, w`` divided by ``spatial_merge_size``."""
    thw = inputs.get("video_grid_thw")
    if thw is None or thw.shape[0] != 1:
        raise ValueError("need video_grid_thw for exactly one video")
    merge = model.config.vision_config.spatial_merge_size
    t, h, w = (int(v) for v in thw[0])
    return (t, h // merge, w // merge)


def _pooled_frames(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
    """LLaVA-OneVision: ``pixel_values_videos [1, F, 3, S, S]`` -> ``(F, ceil(S/p/2), ceil(S/p/2))``,
    the bilinear 2x pooling of ``apply_pooling``."""
    pixels = inputs.get("pixel_values_videos")
    if pixels is None or pixels.shape[0] != 1:
        raise ValueError("need pixel_values_videos for exactly one video")
    vc = model.config.vision_config
    side = math.ceil(vc.image_size // vc.patch_size / 2)
    return (int(pixels.shape[1]), side, side)


def _shuffled_frames(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
    """InternVL: frames as images, ``pixel_values [F, 3, S, S]`` -> ``(F, s, s)`` with
    ``s = S / patch * downsample_ratio`` (the pixel shuffle)."""
    pixels = inputs.get("pixel_values")
    if pixels is None or pixels.dim() != 4:
        raise ValueError("need pixel_values [F, 3, S, S] (one video's frames)")
    vc = model.config.vision_config
    patch = vc.patch_size[0] if isinstance(vc.patch_size, (list, tuple)) else vc.patch_size
    side = int(pixels.shape[-1] // patch * model.config.downsample_ratio)
    return (int(pixels.shape[0]), side, side)


def _no_grid(model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
    raise ValueError(f"{model.config.model_type!r} has no vision inputs; pass the grid explicitly")


@dataclass(frozen=True)
class Family:
    """How one architecture is patched (see the module docstring for each field).

    Attributes:
        model_type: ``config.model_type`` of the top-level model.
        text_model_type: ``model_type`` of the decoder's config this family was written against.
        position_mode: ``"reassign"`` or ``"survive"``.
        multimodal: the text decoder sits at ``model.model.language_model`` (else ``model.model``).
        placeholder: config attributes that may hold the video placeholder id, first found wins.
        blocks: the video is one placeholder run per frame block (else one run for the grid).
        extra_video_tokens: placeholders after the grid that belong to the video run but not to the
            grid (LLaVA-OneVision appends one ``image_newline``); they stay ordinary tokens.
        deepstack: the decoder takes ``visual_pos_masks`` / ``deepstack_visual_embeds``.
        mask_dict: the decoder accepts the engine's ``{layer_type: mask}`` as ``attention_mask``.
        grid: ``(model, processor outputs) -> (T, H, W)``.
    """

    model_type: str
    text_model_type: str
    position_mode: str
    multimodal: bool
    placeholder: tuple[str, ...] = ("video_token_id", "video_token_index")
    blocks: bool = False
    extra_video_tokens: tuple[int, ...] = (0,)
    deepstack: bool = False
    mask_dict: bool = True
    grid: Callable[[nn.Module, Mapping[str, torch.Tensor]], Grid] = _no_grid

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
        for name in self.placeholder:
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise ValueError(f"config of {self.model_type!r} has none of {list(self.placeholder)}")

    def grid_from_inputs(self, model: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Grid:
        """The video's token grid ``(T, H, W)`` as the decoder sees it, from processor outputs."""
        return self.grid(model, inputs)


_QWEN_VL = dict(position_mode="survive", multimodal=True, grid=_merged_thw)
_QWEN3_VL = dict(_QWEN_VL, blocks=True, deepstack=True, mask_dict=False)
# Qwen3.5 / 3.6: the Qwen3-VL video layout without DeepStack; a hybrid decoder that takes the mask dict
_QWEN3_5 = dict(_QWEN_VL, blocks=True)

FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family("llava_onevision", "qwen2", "reassign", True, extra_video_tokens=(0, 1), grid=_pooled_frames),
        Family("qwen2_vl", "qwen2_vl_text", **_QWEN_VL),
        Family("qwen2_5_vl", "qwen2_5_vl_text", **_QWEN_VL),
        Family("qwen3_vl", "qwen3_vl_text", **_QWEN3_VL),
        Family("qwen3_vl_moe", "qwen3_vl_moe_text", **_QWEN3_VL),
        Family("qwen3_5", "qwen3_5_text", **_QWEN3_5),
        Family("qwen3_5_moe", "qwen3_5_moe_text", **_QWEN3_5),
        Family(
            "internvl",
            "qwen3",
            "reassign",
            True,
            placeholder=("image_token_id",),
            blocks=True,
            grid=_shuffled_frames,
        ),
        # Text-only Qwen2 decoder (benchmarks, LLaVA's language model on its own): the caller gives the span.
        Family("qwen2", "qwen2", "reassign", multimodal=False),
        # Text-only Qwen3.5 hybrid decoder (the prefill benchmark): 1-D positions, the caller gives the span.
        Family("qwen3_5_text", "qwen3_5_text", "reassign", multimodal=False),
    )
}


def family_of(model: nn.Module) -> Family:
    """The family of ``model`` by ``config.model_type``; raises ``ValueError`` for unknown types."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in FAMILIES:
        raise ValueError(
            f"no token-reduction support for model_type {model_type!r}; known: {sorted(FAMILIES)}"
        )
    return FAMILIES[model_type]
