"""The two segments of one forward through the text decoder.

Segment 0 (layers < k) sees the chunk at full length ``q``; segment 1 (layers >= k) sees it after
the reduction, ``q' = q - N + N'`` when the chunk holds the video, else ``q``. Each segment has its
own positions, rotary ``(cos, sin)`` and causal mask, sized by its own cached length.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from lmms_sttm.engine.masks import segment_masks
from lmms_sttm.engine.positions import (
    continuation_positions,
    first_chunk_positions,
    next_position,
    reduced_positions,
)
from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.engine.timing import model_devices, synchronize
from lmms_sttm.engine.video import ReductionRecord, VideoSpec


@dataclass
class SegmentInputs:
    """What the layers >= k receive: positions ``[1, q']`` / ``[3, 1, q']``, rotary, masks by layer type."""

    positions: torch.Tensor
    layer_position_ids: torch.Tensor | None
    rotary: tuple[torch.Tensor, torch.Tensor]
    masks: dict


@dataclass
class ForwardPlan:
    """State of one active forward: the chunk, segment 0's positions, the pending reduction, segment 1.

    Attributes:
        mode: ``"reassign"`` or ``"survive"`` (see ``positions.py``).
        cache: the segmented cache, or None for a cache-less forward.
        q: chunk length (logical tokens).
        full_positions: segment 0 positions of the chunk.
        next_reduced: segment 1's next position before the chunk (None on an empty cache).
        span_start: where the video's grid tokens start in the chunk, if it holds them.
        video: the video context of a reducing chunk.
        reduced: segment 1's inputs, built at layer k.
        record: the reduction done at layer k, if any.
    """

    mode: str
    cache: SegmentedCache | None
    q: int
    full_positions: torch.Tensor
    next_reduced: torch.Tensor | None
    span_start: int | None = None
    video: VideoSpec | None = None
    reduced: SegmentInputs | None = None
    record: ReductionRecord | None = None

    @classmethod
    def start(
        cls,
        mode: str,
        cache: SegmentedCache | None,
        q: int,
        supplied_positions: torch.Tensor | None,
        device: torch.device,
    ) -> ForwardPlan:
        """Segment 0 positions: the model's own on an empty cache, else ``next + arange(q)``."""
        if cache is None or cache.logical_length == 0:
            return cls(mode, cache, q, first_chunk_positions(mode, supplied_positions, q, device), None)
        full = continuation_positions(cache.next_positions[0], q)
        return cls(mode, cache, q, full, cache.next_positions[1])

    def enter_reduced_segment(self, text_model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """At layer k: reduces the span if the chunk holds it, builds segment 1's inputs.

        ``hidden`` ``[1, q, C]`` -> ``[1, q', C]``.
        """
        if self.span_start is not None:
            hidden, self.record = reduce_span(hidden, self.span_start, self.video, model_devices(text_model))
            positions = reduced_positions(
                self.mode, self.full_positions, self.span_start, self.record.plan, self.next_reduced
            )
        elif self.mode == "reassign" and self.next_reduced is not None:
            positions = continuation_positions(self.next_reduced, hidden.shape[1])
        else:
            positions = self.full_positions
        past = self.cache.segment_length(1) if self.cache is not None else 0
        self.reduced = SegmentInputs(
            positions=positions,
            layer_position_ids=positions if self.mode == "reassign" else None,
            rotary=text_model.rotary_emb(hidden, positions),
            masks=segment_masks(text_model.config, hidden.shape[1], past, hidden.dtype, hidden.device),
        )
        return hidden

    def finish(self) -> None:
        """Records the processed chunk in the cache (next positions; M-RoPE ids are shared by both segments)."""
        if self.cache is None:
            return
        if self.reduced is None:
            raise RuntimeError("reduction engine: the forward ended before reaching layer k")
        next0 = next_position(self.full_positions)
        next1 = next_position(self.reduced.positions) if self.mode == "reassign" else next0
        self.cache.advance(self.q, next0, next1, reduced=self.record is not None)


def reduce_span(
    hidden: torch.Tensor, start: int, video: VideoSpec, devices: tuple[torch.device, ...] = ()
) -> tuple[torch.Tensor, ReductionRecord]:
    """Runs the reducer on ``hidden[0, start:start+T*H*W]`` and splices its features in: ``[1, q, C] -> [1, q', C]``.

    ``devices``: the GPUs synchronised around the timed reduction (default: ``hidden``'s).
    """
    devices = devices or (hidden.device,)
    stop = start + video.num_tokens
    span = hidden[0, start:stop]
    synchronize(devices)
    began = time.perf_counter()
    with torch.no_grad():
        plan = video.reducer(span, video.grid)
    check_reduction(plan, span, video.grid)
    features = plan.features.to(device=hidden.device, dtype=hidden.dtype)
    reduced = torch.cat([hidden[:, :start], features[None], hidden[:, stop:]], dim=1)
    synchronize(devices)
    seconds = time.perf_counter() - began
    return reduced, ReductionRecord(video.num_tokens, plan.num_kept, seconds, start, plan)
