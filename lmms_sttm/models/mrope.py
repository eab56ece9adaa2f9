"""M-RoPE position ids of a Qwen2-VL / Qwen2.5-VL prompt with one video, as the released models define them.

The released models (Qwen's code, which the STTM authors ran on transformers 4.45) number a
prompt ``[text (s tokens), video (t' x h' x w' LLM grid, raster order), text]`` as follows, each
id a column ``(t, h, w)`` of a ``[3, L]`` table:

- text before the video: ``i`` in all three rows, ``i = 0..s-1``;
- video token ``(i, y, x)``: ``(s + T(i), s + y, s + x)`` with ``T(i) = i`` for Qwen2-VL and
  ``T(i) = floor(i * second_per_grid_t * tokens_per_second)`` (float32 products) for Qwen2.5-VL;
- text after the video: consecutive ids in all rows, starting at ``max(all video ids) + 1``.

Generation continues from the last prompt id + 1, which is what the released ``rope_deltas``
(``max + 1 - L``) give. transformers 5.23's ``get_rope_index`` instead starts the text after a
video at ``s + max(h', w')`` and ignores the temporal extent, so whenever ``T(t'-1) >= max(h', w')``
(every long video) the question's ids overlap the video's later frames while ``rope_deltas``
still jump to ``max + 1``; ``rope_index=transformers`` keeps that behaviour (the ids are then left
to the model).

This module is independent of transformers' ``get_rope_index``; the model layer passes its ids
as ``position_ids`` (``[3, 1, L]``), which the reduction engine keeps for survivors.
"""

from __future__ import annotations

import torch

Grid = tuple[int, int, int]


TimeScale = tuple[float, float] | None
"""Qwen2.5-VL: ``(second_per_grid_t, tokens_per_second)``; Qwen2-VL: None (one id per grid step)."""


def temporal_ids(frames: int, time_scale: TimeScale = None, device=None) -> torch.Tensor:
    """``[t']`` temporal offsets ``T(i)``: ``i``, or ``floor(i * second_per_grid_t * tokens_per_second)``.

    The product is taken in float32, left to right, as the released Qwen2.5-VL code multiplies the
    grid index by the float32 ``second_per_grid_ts`` and then by ``tokens_per_second``.
    """
    index = torch.arange(frames, device=device)
    if time_scale is None:
        return index
    seconds, per_second = time_scale
    scaled = index * torch.tensor(seconds, dtype=torch.float32, device=device)
    return (scaled * per_second).long()


def video_position_ids(start: int, grid: Grid, time_scale: TimeScale = None, device=None) -> torch.Tensor:
    """``[3, t'*h'*w']`` ids of the video tokens in raster order, offset by ``start``."""
    t, h, w = grid
    tt = temporal_ids(t, time_scale, device)[:, None, None].expand(t, h, w)
    yy = torch.arange(h, device=device)[None, :, None].expand(t, h, w)
    xx = torch.arange(w, device=device)[None, None, :].expand(t, h, w)
    return torch.stack([tt, yy, xx]).reshape(3, -1) + start


def video_span(input_ids: torch.Tensor, video_token_id: int, num_tokens: int) -> int:
    """Start of the one contiguous run of ``num_tokens`` video placeholders in ``input_ids [L]``."""
    at = torch.nonzero(input_ids == video_token_id).flatten()
    if at.numel() != num_tokens:
        raise ValueError(f"expected {num_tokens} video placeholders for the grid, found {at.numel()}")
    start = int(at[0])
    if int(at[-1]) != start + num_tokens - 1:
        raise ValueError("the video placeholders must form one contiguous run")
    return start


def mrope_position_ids(
    input_ids: torch.Tensor, video_token_id: int, grid: Grid, time_scale: TimeScale = None
) -> torch.Tensor:
    """``[3, 1, L]`` ids of ``input_ids`` (``[L]`` or ``[1, L]``) holding one video of LLM grid ``grid``.

    ``grid`` is ``(t', h', w')`` after the spatial merge; ``time_scale`` as in :func:`temporal_ids`.
    """
    ids = input_ids.reshape(-1)
    device = ids.device
    t, h, w = grid
    start = video_span(ids, video_token_id, t * h * w)
    video = video_position_ids(start, grid, time_scale, device)
    after = ids.shape[0] - start - video.shape[1]
    resume = int(video.max()) + 1
    before = torch.arange(start, device=device).expand(3, -1)
    tail = (torch.arange(after, device=device) + resume).expand(3, -1)
    return torch.cat([before, video, tail], dim=1)[:, None]


def time_scale_of(model, second_per_grid_ts: torch.Tensor | None) -> TimeScale:
    """``(second_per_grid_t, tokens_per_second)`` for Qwen2.5-VL (1 s without ``second_per_grid_ts``,
    as the released code), None for Qwen2-VL."""
    if model.config.model_type != "qwen2_5_vl":
        return None
    seconds = 1.0 if second_per_grid_ts is None else float(second_per_grid_ts.reshape(-1)[0])
    return seconds, model.config.vision_config.tokens_per_second


def with_position_ids(model, inputs: dict) -> dict:
    """``inputs`` (one prompt: ``input_ids [1, L]``, ``video_grid_thw [1, 3]``, optional
    ``second_per_grid_ts``) plus ``position_ids [3, 1, L]`` computed by :func:`mrope_position_ids`."""
    thw = inputs["video_grid_thw"]
    if thw.shape[0] != 1:
        raise ValueError("M-RoPE ids are computed for prompts with exactly one video")
    merge = model.config.vision_config.spatial_merge_size
    t, h, w = (int(v) for v in thw[0])
    scale = time_scale_of(model, inputs.get("second_per_grid_ts"))
    positions = mrope_position_ids(
        inputs["input_ids"], model.config.video_token_id, (t, h // merge, w // merge), scale
    )
    return {**inputs, "position_ids": positions}
