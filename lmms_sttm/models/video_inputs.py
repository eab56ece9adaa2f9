"""From decoded frames to the model inputs of one video prefix, per model family.

Both families encode the video themselves (vision tower + projector, timed apart from the LLM
prefill, as the paper's TTFT excludes the vision encoder) and hand the features to the model as
``mm_encoder_outputs``; the text gets exactly as many video placeholders as there are features.

- LLaVA (``LlavaOnevisionForConditionalGeneration``): frames -> SigLIP -> projector -> bilinear
  2x pooling -> ``[F*h*w, D]``. ``newline``: ``no_token`` (the paper: no newline tokens; the span
  is exactly the grid), ``one_token`` (transformers' default: one ``image_newline`` after the
  video), ``grid`` (LLaVA-NeXT's: one after every row, ``F*h*(w+1)`` tokens).
- Qwen2-VL / Qwen2.5-VL: frames resized as qwen-vl-utils does (``smart_resize`` with the
  protocol's pixel budgets, in units of the processor's ``patch*merge`` factor), an even frame
  count, then the vision tower with its PatchMerger -> ``[t*h*w, D]``. Qwen2.5-VL's
  ``second_per_grid_ts`` is ``temporal_patch_size / sampled fps``, the rate of the frames actually
  sampled (as qwen-vl-utils returns it), not the target rate; 3-D positions: ``models/mrope.py``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from lmms_sttm.engine.timing import clock, model_devices
from lmms_sttm.models import vision_attention as vision_attention_scores

Grid = tuple[int, int, int]


@dataclass
class VideoInputs:
    """The encoded video of one prefix.

    Attributes:
        features: ``[K, D]`` placeholder features in sequence order (K = grid tokens + newlines).
        grid: ``(T, H, W)`` of the grid tokens (the reducible span), or None with newline tokens.
        extra: model kwargs besides ids/mask (Qwen: ``video_grid_thw``, ``second_per_grid_ts``).
        vision_s: wall time of the vision encoder + projector.
        timestamps: seconds of each grid frame (Qwen: the first frame of each temporal patch), when known.
        layout: how the prompt's one video placeholder is written out for frame-block families
            (``video_blocks.Layout``); None: one run of placeholders.
        deepstack: Qwen3-VL's DeepStack features, ``[K, D]`` per tapped vision layer (else empty).
        vision_scores: ``[T, H*W]`` float32, the attention each grid token's vision-tower tokens
            receive in the layer FlashVID reads, mapped to the grid as the features are
            (``models/vision_attention.py``); None unless the encoder was asked for them.
    """

    features: torch.Tensor
    grid: Grid | None
    extra: dict = field(default_factory=dict)
    vision_s: float = 0.0
    timestamps: tuple[float, ...] | None = None
    layout: object = None
    deepstack: list = field(default_factory=list)
    vision_scores: torch.Tensor | None = None

    @property
    def num_placeholders(self) -> int:
        return int(self.features.shape[0])


def _clock(model) -> float:
    """The time after synchronising every GPU ``model`` occupies (:mod:`lmms_sttm.engine.timing`)."""
    return clock(model_devices(model))


def llava_pixels(processor, frames: np.ndarray) -> torch.Tensor:
    """CPU preprocessing of LLaVA: ``frames [F, H, W, 3]`` uint8 -> ``pixel_values_videos [1, F, 3, S, S]``."""
    return processor.video_processor(videos=[frames], return_tensors="pt")["pixel_values_videos"]


@torch.no_grad()
def llava_tower(
    model, processor, frames: np.ndarray, pixels: torch.Tensor | None = None
) -> tuple[torch.Tensor, float]:
    """``frames [F, H, W, 3]`` uint8 -> the SigLIP tower output ``[F, N, C]`` (before the projector).

    The selected hidden layer (``vision_feature_layer``, ``vision_feature_select_strategy``) exactly
    as ``get_video_features`` picks it; N = (image_size / patch_size)^2 (729 and C = 1152 for the 7B
    models). Returns the tensor and the tower's wall time. ``pixels``: :func:`llava_pixels` of the
    frames when already computed (decode-ahead).
    """
    device, dtype = model.device, model.dtype
    pixels = llava_pixels(processor, frames) if pixels is None else pixels
    layer = model.config.vision_feature_layer
    began = _clock(model)
    out = model.model.get_video_features(
        pixels.to(device, dtype),
        vision_feature_layer=layer,
        vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        output_hidden_states=True,
        return_dict=True,
    )
    if isinstance(layer, int):
        tower = out.hidden_states[layer]
    else:
        tower = torch.cat([out.hidden_states[i] for i in layer], dim=-1)
    if model.config.vision_feature_select_strategy == "default":
        tower = tower[:, 1:]
    return tower, _clock(model) - began


def llava_tower_shape(model) -> tuple[int, int]:
    """``(N, C)`` of one frame's tower output this model expects."""
    vc = model.config.vision_config
    layer = model.config.vision_feature_layer
    n = (vc.image_size // vc.patch_size) ** 2
    return n, vc.hidden_size * (1 if isinstance(layer, int) else len(layer))


@torch.no_grad()
def llava_from_tower(model, tower: torch.Tensor, newline: str, vision_s: float = 0.0) -> VideoInputs:
    """Tower output ``[F, N, C]`` -> projector -> bilinear 2x pooling -> placeholder features.

    The second half of ``get_video_features`` (same ops, same order), then the newline layout.
    """
    device = model.device
    began = _clock(model)
    inner = model.model
    proj = inner.multi_modal_projector(tower.to(device, model.dtype))
    pooled = inner.apply_pooling(proj)  # [F, h*w, D]
    f, hw, dim = pooled.shape
    rows = pooled.reshape(f * hw, dim)
    nl_vec = inner.image_newline.to(rows.device, rows.dtype)
    seconds = vision_s + _clock(model) - began
    side = math.isqrt(hw)
    grid = (f, side, side)
    if newline == "no_token":
        return VideoInputs(rows, grid, vision_s=seconds)
    if newline == "one_token":
        return VideoInputs(torch.cat([rows, nl_vec[None]], dim=0), None, vision_s=seconds)
    nl = nl_vec.expand(f, side, 1, dim)
    grid_rows = torch.cat([rows.reshape(f, side, side, dim), nl], dim=2)
    return VideoInputs(grid_rows.reshape(-1, dim), None, vision_s=seconds)


def encode_llava(
    model,
    processor,
    frames: np.ndarray,
    newline: str,
    pixels: torch.Tensor | None = None,
    vision_attention: bool | str = False,
) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 -> LLaVA video features (see module docstring).

    ``vision_attention``: also the SigLIP layer's attention scores on the grid (a kind of
    ``models/vision_attention.KINDS``; ``True``: ``received``) (``vision_scores``,
    ``[F, h*w]``; its time counts in ``vision_s``); only with a grid (``newline=no_token``).
    """
    if not vision_attention:
        tower, seconds = llava_tower(model, processor, frames, pixels)
        return llava_from_tower(model, tower, newline, vision_s=seconds)
    with vision_attention_scores.recorder(model, "llava", vision_attention) as hook:
        tower, seconds = llava_tower(
            model, processor, frames, pixels
        )  # the hook runs inside the timed forward
    video = llava_from_tower(model, tower, newline, vision_s=seconds)
    if video.grid is None:
        return video
    began = _clock(model)
    scores = vision_attention_scores.llava_grid_scores(model, hook.scores)
    return replace(video, vision_scores=scores, vision_s=video.vision_s + _clock(model) - began)


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Both sides multiples of ``factor``, the area within ``[min_pixels, max_pixels]``, aspect kept."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of {height}x{width} is above 200")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def qwen_frame_size(height: int, width: int, num_frames: int, factor: int) -> tuple[int, int]:
    """The protocol's per-frame size (qwen-vl-utils' video budgets, in ``factor``-pixel units).

    min 128 and max 768 tokens of ``factor x factor`` px per frame; the whole video gets
    ``$VIDEO_MAX_PIXELS`` (default ``128000 * factor^2 * 0.9``) shared over frame pairs.
    """
    unit = factor * factor
    min_px, max_px = 128 * unit, 768 * unit
    total = float(os.environ.get("VIDEO_MAX_PIXELS", 128000 * unit * 0.9))
    per_frame = max(min(max_px, total / num_frames * 2), int(min_px * 1.05))
    return smart_resize(height, width, factor, min_px, int(per_frame))


def sampled_fps(num_sampled: int, info) -> float:
    """Frames per second of ``num_sampled`` frames spread over a video (``info``: ``VideoInfo``).

    qwen-vl-utils' (and the STTM authors' copy's) ``sample_fps = nframes / total_frames * video_fps``
    with ``nframes`` the even count fed to the model: e.g. 8 frames of a 60 s clip are 2/15 fps,
    so Qwen2.5-VL's ``second_per_grid_ts`` (2 frames per grid step) is 15.
    """
    return num_sampled / info.num_frames * info.fps


def even_frames(frames: np.ndarray, indices: list[int]) -> tuple[np.ndarray, list[int]]:
    """Pad to an even frame count by repeating the last frame (Qwen's 2-frame temporal patches)."""
    if frames.shape[0] % 2:
        frames = np.concatenate([frames, frames[-1:]], axis=0)
        indices = [*indices, indices[-1]]
    return frames, indices


def qwen_pixels(processor, frames: np.ndarray) -> dict:
    """CPU preprocessing of Qwen: ``frames [F, H, W, 3]`` uint8 (F even) resized to the protocol's
    size -> the video processor's ``pixel_values_videos`` ``[t*h*w, C*2*p*p]`` and ``video_grid_thw`` ``[1, 3]``."""
    vp = processor.video_processor
    factor = vp.patch_size * vp.merge_size
    h, w = qwen_frame_size(frames.shape[1], frames.shape[2], frames.shape[0], factor)
    return resized_pixels(processor, frames, h, w)


def resized_pixels(processor, frames: np.ndarray, height: int, width: int) -> dict:
    """``frames [F, H, W, 3]`` uint8 resized to ``height x width`` (bicubic, antialiased: qwen-vl-utils'
    resize), then the Qwen video processor without its own resize -> ``pixel_values_videos``,
    ``video_grid_thw``."""
    from torchvision.transforms.functional import InterpolationMode, resize

    video = torch.from_numpy(frames).permute(0, 3, 1, 2)
    video = resize(video, [height, width], interpolation=InterpolationMode.BICUBIC, antialias=True)
    vp = processor.video_processor
    return dict(vp(videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt"))


@torch.no_grad()
def encode_qwen(
    model,
    processor,
    frames: np.ndarray,
    fps: float,
    pixels: dict | None = None,
    vision_attention: bool | str = False,
) -> VideoInputs:
    """``frames [F, H, W, 3]`` uint8 (F even) -> Qwen2-VL / 2.5-VL video features and grid.

    ``fps``: the sampled frames' rate (``sampled_fps``), which sets ``second_per_grid_ts``.
    ``pixels``: :func:`qwen_pixels` of the frames when already computed (decode-ahead).
    ``vision_attention``: also the last vision block's attention scores (a kind of
    ``models/vision_attention.KINDS``; ``True``: ``received``) on the merged grid
    (``vision_scores [t, h'*w']``, timed with the tower).
    """
    enc = qwen_pixels(processor, frames) if pixels is None else pixels
    thw = enc["video_grid_thw"]
    began = _clock(model)
    out, scores = qwen_tower(model, enc["pixel_values_videos"], thw, vision_attention)
    seconds = _clock(model) - began
    pooled = out.pooler_output
    feats = (
        torch.cat(list(pooled), dim=0)
        if isinstance(pooled, (tuple, list))
        else pooled.reshape(-1, pooled.shape[-1])
    )
    t, gh, gw = (int(v) for v in thw[0])
    return replace(_qwen_inputs(model, processor, feats, (t, gh, gw), fps, seconds), vision_scores=scores)


def qwen_tower(model, pixel_values: torch.Tensor, thw: torch.Tensor, vision_attention: bool | str = False):
    """``get_video_features`` of a Qwen model (2-VL, 2.5-VL, 3-VL), and with ``vision_attention`` the
    last vision block's received attention on the merged grid ``[t, h'*w']`` (else None)."""
    device = model.device
    if not vision_attention:
        out = model.model.get_video_features(
            pixel_values.to(device, model.dtype), thw.to(device), return_dict=True
        )
        return out, None
    with vision_attention_scores.recorder(model, "qwen", vision_attention) as hook:
        out = model.model.get_video_features(
            pixel_values.to(device, model.dtype), thw.to(device), return_dict=True
        )
    return out, vision_attention_scores.qwen_grid_scores(model, hook.scores, thw.to(hook.scores.device))


def _qwen_inputs(model, processor, feats: torch.Tensor, thw: Grid, fps: float, seconds: float) -> VideoInputs:
    """Merger output ``[t*h*w, D]`` (raster order) and patch grid ``thw`` -> :class:`VideoInputs`."""
    device = model.device
    vp = processor.video_processor
    merge = vp.merge_size
    t, gh, gw = thw
    extra = {"video_grid_thw": torch.tensor([[t, gh, gw]], device=device)}
    if model.config.model_type == "qwen2_5_vl":
        extra["second_per_grid_ts"] = torch.tensor([vp.temporal_patch_size / fps], device=device)
    return VideoInputs(feats, (t, gh // merge, gw // merge), extra=extra, vision_s=seconds)


def qwen_feature_dim(model) -> int:
    """Channel count D of the merger output (the text hidden size)."""
    return int(model.config.get_text_config().hidden_size)


def qwen_from_features(model, processor, stored: torch.Tensor, fps: float) -> VideoInputs:
    """Stored merger output ``[t, h/2, w/2, D]`` -> features ``[t*h/2*w/2, D]`` and ``video_grid_thw``.

    ``video_grid_thw`` is ``[t, h, w]`` in patches, i.e. the stored grid times ``merge_size``.
    """
    t, h2, w2, dim = stored.shape
    merge = processor.video_processor.merge_size
    feats = stored.reshape(t * h2 * w2, dim).to(model.device, model.dtype)
    return _qwen_inputs(model, processor, feats, (t, h2 * merge, w2 * merge), fps, 0.0)


def as_encoder_outputs(video: VideoInputs, family: str) -> dict:
    """``mm_encoder_outputs`` for the model forward: LLaVA reads ``[1, K, D]``; Qwen (2-VL, 2.5-VL, 3.5)
    a tuple of ``[K, D]`` (Qwen3-VL with its DeepStack features); InternVL the frames as ``image``
    features ``[K, D]``."""
    if family == "qwen3_vl":
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        out = BaseModelOutputWithDeepstackFeatures(
            pooler_output=(video.features,), deepstack_features=[(d,) for d in video.deepstack]
        )
        return {"video": out}
    if family == "internvl":
        return {"image": BaseModelOutputWithPooling(pooler_output=video.features)}
    pooled = (video.features,) if family in ("qwen", "qwen3_5") else video.features[None]
    return {"video": BaseModelOutputWithPooling(pooler_output=pooled)}


def grid_seconds(frame_seconds, per_grid_frame: int) -> tuple[float, ...]:
    """Seconds of each grid frame from those of the sampled frames (``per_grid_frame`` frames per grid
    frame: 1 for LLaVA, the temporal patch size for Qwen; a grid frame takes its first frame's time)."""
    return tuple(float(t) for t in list(frame_seconds)[::per_grid_frame])
