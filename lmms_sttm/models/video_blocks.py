"""Video inputs of the frame-block families: Qwen3-VL (dense and MoE) and InternVL3.5.

Both encode the video themselves (vision tower timed apart from the LLM prefill) and describe how
the prompt's one video placeholder is written out (``VideoInputs.layout``): one block per
temporal patch or frame, with the model's own text around each block.

- Qwen3-VL: frames resized as for Qwen2-VL (qwen-vl-utils' budgets in units of the processor's
  ``patch*merge`` factor, an even count), the vision tower with its merger -> ``[t*h*w, D]`` plus
  the DeepStack features (one ``[t*h*w, D]`` per tapped vision layer). The chat template's
  ``<|vision_start|><|video_pad|><|vision_end|>`` becomes, per temporal patch,
  ``<{t:.1f} seconds><|vision_start|>`` + ``h*w`` video tokens + ``<|vision_end|>``, the time being
  the processor's own ``_calculate_timestamps`` (mean of the patch's two frames).
- InternVL3.5: each frame through the video processor (square resize) and ``get_image_features``
  (pixel shuffle, projector) -> ``[F*s*s, D]``; ``<video>`` becomes, as the processor writes it,
  ``Frame{i}: <img>`` + ``s*s`` image tokens + ``</img>`` per frame, one per line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmms_sttm.models.video_inputs import VideoInputs, _clock, qwen_pixels


@dataclass(frozen=True)
class Layout:
    """How the prompt's video placeholder is written out: ``wrapper`` (the chat template's text for
    one video) is replaced by ``text`` (the blocks with their own text and placeholders)."""

    wrapper: str
    text: str


@torch.no_grad()
def encode_qwen3_vl(
    model, processor, frames: np.ndarray, indices: list[int], fps: float, pixels=None
) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 (F even; ``indices`` their frame numbers in a video of ``fps``)
    -> features, DeepStack features, grid and the block layout."""
    device = model.device
    enc = qwen_pixels(processor, frames) if pixels is None else pixels
    thw = enc["video_grid_thw"]
    began = _clock(model)
    out = model.model.get_video_features(
        enc["pixel_values_videos"].to(device, model.dtype), thw.to(device), return_dict=True
    )
    seconds = _clock(model) - began
    feats = torch.cat(list(out.pooler_output), dim=0)
    deepstack = [torch.cat(list(level), dim=0) for level in out.deepstack_features]
    vp = processor.video_processor
    merge = vp.merge_size
    t, gh, gw = (int(v) for v in thw[0])
    per_block = gh * gw // (merge * merge)
    stamps = processor._calculate_timestamps(list(indices), fps, vp.temporal_patch_size)
    start, end, pad = processor.vision_start_token, processor.vision_end_token, processor.video_token
    text = "".join(f"<{s:.1f} seconds>{start}{pad * per_block}{end}" for s in stamps)
    layout = Layout(f"{start}{pad}{end}", text)
    return VideoInputs(
        feats,
        (t, gh // merge, gw // merge),
        extra={"video_grid_thw": thw.to(device)},
        vision_s=seconds,
        layout=layout,
        deepstack=deepstack,
    )


def internvl_pixels(processor, frames: np.ndarray) -> torch.Tensor:
    """CPU preprocessing of InternVL: ``frames [F, H, W, 3]`` -> ``pixel_values [F, 3, S, S]``."""
    out = processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"]
    return out.flatten(0, 1)


@torch.no_grad()
def encode_internvl(model, processor, frames: np.ndarray, pixels: torch.Tensor | None = None) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 -> ``[F*s*s, D]`` features, grid ``(F, s, s)`` and the frame layout."""
    device = model.device
    pixels = internvl_pixels(processor, frames) if pixels is None else pixels
    config = model.config
    began = _clock(model)
    out = model.model.get_image_features(
        pixel_values=pixels.to(device, model.dtype),
        vision_feature_layer=config.vision_feature_layer,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        return_dict=True,
    )
    seconds = _clock(model) - began
    pooled = out.pooler_output  # [F, s*s, D]
    f, n, dim = pooled.shape
    side = int(round(n**0.5))
    token = processor.image_token
    lines = (
        f"Frame{i + 1}: {processor.start_image_token}{token * n}{processor.end_image_token}" for i in range(f)
    )
    layout = Layout(processor.video_token, "\n".join(lines))
    return VideoInputs(pooled.reshape(f * n, dim), (f, side, side), vision_s=seconds, layout=layout)
