"""Video inputs of the frame-block families: Qwen3-VL (dense and MoE), Qwen3.5 and InternVL3.5.

Both encode the video themselves (vision tower timed apart from the LLM prefill) and describe how
the prompt's one video placeholder is written out (``VideoInputs.layout``): one block per
temporal patch or frame, with the model's own text around each block.

- Qwen3-VL: frames resized as for Qwen2-VL (qwen-vl-utils' budgets in units of the processor's
  ``patch*merge`` factor, an even count), the vision tower with its merger -> ``[t*h*w, D]`` plus
  the DeepStack features (one ``[t*h*w, D]`` per tapped vision layer). The chat template's
  ``<|vision_start|><|video_pad|><|vision_end|>`` becomes, per temporal patch,
  ``<{t:.1f} seconds><|vision_start|>`` + ``h*w`` video tokens + ``<|vision_end|>``, the time being
  the processor's own ``_calculate_timestamps`` (mean of the patch's two frames).
- Qwen3.5 / Qwen3.6 (dense and MoE): Qwen3-VL's tower and blocks without DeepStack; frames resized
  with lmms-eval's ``qwen3_5`` budgets (:func:`qwen3_5_frame_size`).
- InternVL3.5: each frame through the video processor (square resize) and ``get_image_features``
  (pixel shuffle, projector) -> ``[F*s*s, D]``; ``<video>`` becomes, as the processor writes it,
  ``Frame{i}: <img>`` + ``s*s`` image tokens + ``</img>`` per frame, one per line.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch

from lmms_sttm.models import vision_attention as vision_attention_scores
from lmms_sttm.models.video_inputs import (
    VideoInputs,
    _clock,
    qwen_pixels,
    qwen_tower,
    resized_pixels,
    smart_resize,
)


@dataclass(frozen=True)
class Layout:
    """How the prompt's video placeholder is written out: ``wrapper`` (the chat template's text for
    one video) is replaced by ``text`` (the blocks with their own text and placeholders)."""

    wrapper: str
    text: str


@torch.no_grad()
def encode_qwen3_vl(
    model,
    processor,
    frames: np.ndarray,
    indices: list[int],
    fps: float,
    pixels=None,
    vision_attention: bool | str = False,
) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 (F even; ``indices`` their frame numbers in a video of ``fps``)
    -> features, DeepStack features, grid and the block layout; with ``vision_attention`` (a kind of
    ``models/vision_attention.KINDS``; ``True``: ``received``) also the last vision block's
    attention scores on the merged grid (``vision_scores [t, h'*w']``, timed with the tower)."""
    pixels = qwen_pixels(processor, frames) if pixels is None else pixels
    video, out = _encode_blocks(model, processor, indices, fps, pixels, vision_attention)
    return replace(video, deepstack=[torch.cat(list(level), dim=0) for level in out.deepstack_features])


@torch.no_grad()
def encode_qwen3_5(
    model,
    processor,
    frames: np.ndarray,
    indices: list[int],
    fps: float,
    pixels=None,
    vision_attention: bool | str = False,
) -> VideoInputs:
    """Qwen3.5 / Qwen3.6 (dense and MoE): Qwen3-VL's blocks without DeepStack (the tower has no
    taps); ``pixels`` from :func:`qwen3_5_pixels` (lmms-eval's ``qwen3_5`` budgets). Shapes as
    :func:`encode_qwen3_vl`."""
    pixels = qwen3_5_pixels(processor, frames) if pixels is None else pixels
    video, _ = _encode_blocks(model, processor, indices, fps, pixels, vision_attention)
    return video


def _encode_blocks(model, processor, indices, fps, enc, vision_attention):
    """The Qwen3-VL-style tower on preprocessed ``enc`` and the block layout: ``(VideoInputs
    without DeepStack, tower output)``."""
    device = model.device
    thw = enc["video_grid_thw"]
    began = _clock(model)
    out, scores = qwen_tower(model, enc["pixel_values_videos"], thw, vision_attention)
    seconds = _clock(model) - began
    feats = torch.cat(list(out.pooler_output), dim=0)
    vp = processor.video_processor
    merge = vp.merge_size
    t, gh, gw = (int(v) for v in thw[0])
    per_block = gh * gw // (merge * merge)
    stamps = processor._calculate_timestamps(list(indices), fps, vp.temporal_patch_size)
    start, end, pad = processor.vision_start_token, processor.vision_end_token, processor.video_token
    text = "".join(f"<{s:.1f} seconds>{start}{pad * per_block}{end}" for s in stamps)
    layout = Layout(f"{start}{pad}{end}", text)
    video = VideoInputs(
        feats,
        (t, gh // merge, gw // merge),
        extra={"video_grid_thw": thw.to(device)},
        vision_s=seconds,
        layout=layout,
        vision_scores=scores,
    )
    return video, out


#: lmms-eval 0.7.3's ``qwen3_5`` wrapper, through qwen-vl-utils 0.0.14 (``min_pixels=64*32*32``,
#: ``total_pixels=224*1024*32*32``, no per-video ``max_pixels``): per frame at least 64 and at most 768
#: tokens of ``factor x factor`` px, the whole video at most 224*1024 such tokens over frame pairs
QWEN3_5_MIN_TOKENS, QWEN3_5_MAX_TOKENS, QWEN3_5_TOTAL_TOKENS = 64, 768, 224 * 1024


def qwen3_5_frame_size(height: int, width: int, num_frames: int, factor: int) -> tuple[int, int]:
    """The per-frame size of lmms-eval's ``qwen3_5`` protocol (``factor``: the processor's
    ``patch * merge``, 32 px for the real models): qwen-vl-utils' ``max_pixels = max(min(768 u,
    total / F * 2), 1.05 * min_pixels)`` with ``u = factor**2``, then its ``smart_resize``."""
    unit = factor * factor
    min_px = QWEN3_5_MIN_TOKENS * unit
    per_frame = max(
        min(QWEN3_5_MAX_TOKENS * unit, QWEN3_5_TOTAL_TOKENS * unit / num_frames * 2), int(min_px * 1.05)
    )
    return smart_resize(height, width, factor, min_px, per_frame)


def qwen3_5_pixels(processor, frames: np.ndarray) -> dict:
    """CPU preprocessing of Qwen3.5: ``frames [F, H, W, 3]`` uint8 (F even) resized to
    :func:`qwen3_5_frame_size` -> ``pixel_values_videos [t*h*w, C*2*p*p]`` and ``video_grid_thw [1, 3]``."""
    vp = processor.video_processor
    factor = vp.patch_size * vp.merge_size
    h, w = qwen3_5_frame_size(frames.shape[1], frames.shape[2], frames.shape[0], factor)
    return resized_pixels(processor, frames, h, w)


def internvl_pixels(processor, frames: np.ndarray) -> torch.Tensor:
    """CPU preprocessing of InternVL: ``frames [F, H, W, 3]`` -> ``pixel_values [F, 3, S, S]``."""
    out = processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"]
    return out.flatten(0, 1)


@torch.no_grad()
def encode_internvl(
    model,
    processor,
    frames: np.ndarray,
    pixels: torch.Tensor | None = None,
    vision_attention: bool = False,
) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 -> ``[F*s*s, D]`` features, grid ``(F, s, s)`` and the frame layout;
    with ``vision_attention`` also InternViT's received attention on the grid (``vision_scores
    [F, s*s]``, timed with the tower)."""
    device = model.device
    pixels = internvl_pixels(processor, frames) if pixels is None else pixels
    config = model.config
    began = _clock(model)
    kind = vision_attention  # a score kind of models/vision_attention.KINDS, True, or False
    hook = vision_attention_scores.recorder(model, "internvl", kind) if kind else nullcontext()
    with hook:
        out = model.model.get_image_features(
            pixel_values=pixels.to(device, model.dtype),
            vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy,
            return_dict=True,
        )
    scores = vision_attention_scores.internvl_grid_scores(model, hook.scores) if vision_attention else None
    seconds = _clock(model) - began
    pooled = out.pooler_output  # [F, s*s, D]
    f, n, dim = pooled.shape
    side = int(round(n**0.5))
    token = processor.image_token
    lines = (
        f"Frame{i + 1}: {processor.start_image_token}{token * n}{processor.end_image_token}" for i in range(f)
    )
    layout = Layout(processor.video_token, "\n".join(lines))
    return VideoInputs(
        pooled.reshape(f * n, dim), (f, side, side), vision_s=seconds, layout=layout, vision_scores=scores
    )
