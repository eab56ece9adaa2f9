"""The segments of one forward through the text decoder.

Segment 0 (layers below the first split) sees the chunk at full length ``q``; each later segment
starts at a split layer and sees the chunk after one more stage: ``q_s = q - N + n_s`` when the
chunk holds the video (``n_s`` video tokens left after stage ``s``), else ``q``. Each segment has
its own positions, rotary ``(cos, sin)`` and causal mask, sized by its own cached length.

In the chunk that holds the video (the first chunk on an empty cache) the stages come from the
method's run (``stages.py``) as the layers go by; in later chunks from the cache's splits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn

from lmms_sttm.engine.attention_scores import last_token_attention
from lmms_sttm.engine.masks import segment_masks
from lmms_sttm.engine.placement import on_layer_device
from lmms_sttm.engine.positions import (
    continuation_positions,
    first_chunk_positions,
    next_position,
    reduced_positions,
)
from lmms_sttm.engine.query_aware import AttentionContext
from lmms_sttm.engine.reducer import check_reduction
from lmms_sttm.engine.segmented_cache import SegmentedCache
from lmms_sttm.engine.stages import Stage, StageRun, compose
from lmms_sttm.engine.timing import synchronize
from lmms_sttm.engine.video import ReductionRecord, VideoSpec
from lmms_sttm.merging.reduction import Reduction


@dataclass
class SegmentInputs:
    """What the layers of one segment receive: positions ``[1, q_s]`` / ``[3, 1, q_s]``, rotary, masks
    by layer type (None for segment 0: the decoder's own)."""

    positions: torch.Tensor
    layer_position_ids: torch.Tensor | None = None
    rotary: tuple[torch.Tensor, torch.Tensor] | None = None
    masks: dict | None = None


@dataclass
class ForwardPlan:
    """State of one active forward: the chunk, its segments so far and the video's pending stages.

    Attributes:
        mode: the family's ``"reassign"`` (1-D RoPE) or ``"survive"`` (M-RoPE).
        cache: the segmented cache, or None for a cache-less forward.
        q: chunk length (logical tokens).
        segments: inputs of each segment opened so far (``segments[0]`` holds the full positions).
        nexts_before: each segment's next position before the chunk under the decode rule (None on
            an empty cache); ``counts_before``: the cache's own per-segment counts.
        decode_positions: the engine's rule for tokens after the prompt.
        span_start: where the video's grid tokens start in the chunk, if it holds them.
        video: the video context of a reducing chunk; ``run``: its stages.
        splits: the layers where this forward opened segments.
        record: the composed reduction so far (None before the first stage).
        scores: the pending stage's attention scores, computed at the layer before it.
        num_layers: decoder layers of the model.
        mid: ``(layer, rows [q'], positions)`` of an attention-point stage that ran inside
            ``layer``; the next layer gathers ``rows`` and opens the segment with ``positions``.
        record_plan: the last stage's own plan (over the tokens it saw).
        devices: every CUDA device the model occupies (synchronised around the timed stages).
    """

    mode: str
    cache: SegmentedCache | None
    q: int
    segments: list[SegmentInputs]
    nexts_before: list[torch.Tensor | None] | None
    counts_before: list[torch.Tensor | None] | None = None
    decode_positions: str = "authors"
    span_start: int | None = None
    video: VideoSpec | None = None
    run: StageRun | None = None
    splits: list[int] = field(default_factory=list)
    record: ReductionRecord | None = None
    scores: torch.Tensor | None = None
    num_layers: int = 0
    mid: tuple | None = None
    record_plan: Reduction | None = None
    devices: tuple[torch.device, ...] = ()

    @classmethod
    def start(
        cls,
        mode: str,
        cache: SegmentedCache | None,
        q: int,
        supplied_positions: torch.Tensor | None,
        device: torch.device,
        decode_positions: str = "authors",
    ) -> ForwardPlan:
        """Segment 0 positions: the model's own on an empty cache, else ``next + arange(q)``."""
        if cache is None or cache.logical_length == 0:
            full = first_chunk_positions(mode, supplied_positions, q, device)
            return cls(mode, cache, q, [SegmentInputs(full)], None, decode_positions=decode_positions)
        full = continuation_positions(cache.next_positions[0], q)
        nexts = [cache.next_position_of(s) for s in range(cache.num_segments)]
        counts = list(cache.next_positions)
        return cls(mode, cache, q, [SegmentInputs(full)], nexts, counts, decode_positions)

    @property
    def full_positions(self) -> torch.Tensor:
        return self.segments[0].positions

    @property
    def reducing(self) -> bool:
        return self.run is not None

    @property
    def span_length(self) -> int:
        """Video tokens in the current segment's chunk."""
        return self.video.num_tokens if self.record is None else self.record.visual_tokens_kept

    def pending_stage(self) -> Stage | None:
        return self.run.next_stage() if self.run is not None else None

    # ------------------------------------------------------------------ per layer
    def enter_layer(self, index: int, text_model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        """Before decoder layer ``index``: runs the stage due there (reducing chunk) or opens the
        cached segment that starts there (later chunks). ``hidden [1, q_s, C] -> [1, q_s', C]``."""
        if self.reducing:
            if self.mid is not None:  # an attention-point stage ran inside the previous layer
                _, rows, positions = self.mid
                self.mid = None
                hidden = hidden.index_select(1, rows)
                self._open(index, text_model, hidden, positions)
            stage = self.pending_stage()
            if stage is not None and stage.layer < index:
                raise RuntimeError(f"stage at layer {stage.layer} requested after layer {index} ran")
            if stage is not None and stage.layer == index and stage.point == "input":
                hidden, positions = self._run_stage(stage, hidden)
                self._open(index, text_model, hidden, positions)
        elif self.cache is not None and index in self.cache.splits:
            s = self.cache.splits.index(index) + 1
            previous = self.nexts_before[s] if self.nexts_before is not None else None
            if previous is None:  # a cache that was never reduced: all segments alike
                positions = self.segments[-1].positions
            else:
                positions = continuation_positions(previous, hidden.shape[1])
            self._open(index, text_model, hidden, positions)
        return hidden

    def segment_kwargs(self) -> SegmentInputs | None:
        """The inputs the current layer gets (None in segment 0: the decoder's own)."""
        return self.segments[-1] if len(self.segments) > 1 else None

    def bind_scores(self, index: int, layer: nn.Module, hidden: torch.Tensor, rotary) -> None:
        """At layer ``index``: if the next stage is at ``index + 1`` and reads attention, computes the
        last prompt token's attention over the current video span from this layer's projections."""
        stage = self.pending_stage()
        if stage is None or stage.split != index + 1 or not stage.needs_attention:
            return
        if rotary is None:
            raise ValueError(f"query-aware stage: layer {index} received no position_embeddings")
        start = self.span_start
        hidden, rotary = on_layer_device(layer, hidden, rotary)  # before accelerate moves them
        self.scores = last_token_attention(layer, hidden, rotary, (start, start + self.span_length))

    def after_attention(self, index: int, residual: torch.Tensor) -> torch.Tensor | None:
        """Inside layer ``index``, before its MLP: runs an attention-point stage due there.

        ``residual [1, q_s, C]`` (the post-attention states, which the layer also keeps as its
        residual) gets the reduced tokens written in place at their rows (pre text, the kept
        tokens' representatives, post text); returns the reduced ``[1, q', C]`` for the MLP, whose
        output ``scatter_mlp`` puts back at those rows. The next layer gathers the rows.
        """
        stage = self.pending_stage()
        if stage is None or stage.point != "attention" or stage.layer != index:
            return None
        if index + 1 >= self.num_layers:
            raise RuntimeError(f"an attention-point stage needs a layer after it, got layer {index}")
        start, n = self.span_start, self.span_length
        q = residual.shape[1]
        reduced, positions = self._run_stage(stage, residual)
        plan = self.record_plan
        device = residual.device
        rows = torch.cat(
            [
                torch.arange(start, device=device),
                start + plan.rep_index.to(device),
                torch.arange(start + n, q, device=device),
            ]
        )
        residual[:, rows] = reduced  # in place: the layer's residual is this tensor
        self.mid = (index, rows, positions)
        return reduced

    def scatter_mlp(self, index: int, out: torch.Tensor, full: int) -> torch.Tensor | None:
        """The MLP output ``[1, q', C]`` of an attention-point stage's layer, at the kept rows of a
        zero ``[1, full, C]`` (the layer adds it to the residual: exact at the kept rows)."""
        if self.mid is None or self.mid[0] != index:
            return None
        rows = self.mid[1]
        scattered = out.new_zeros(out.shape[0], full, out.shape[2])
        scattered[:, rows] = out
        return scattered

    def _run_stage(self, stage: Stage, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs ``stage`` on the current span: ``(reduced hidden [1, q', C], its positions)``."""
        if stage.needs_attention and self.scores is None:
            raise RuntimeError(
                f"stage at layer {stage.layer} needs attention scores of layer {stage.layer - 1}"
            )
        context = AttentionContext(
            self.scores,
            stage.layer,
            self.num_layers,
            tokens=None if self.record is None else self.record.plan,
        )
        self.scores = None
        grid = self.video.grid if self.record is None else (1, 1, self.span_length)
        hidden, plan, seconds = reduce_span(
            hidden, self.span_start, self.span_length, grid, self.run, context, self.devices
        )
        rule = stage.position_rule or ("renumber" if self.mode == "reassign" else "original")
        if self.mode == "survive":
            rule = "original"  # M-RoPE ids cannot be renumbered
        # the video is in the first chunk on an empty cache: renumbering starts at 0
        positions = reduced_positions(rule, self.segments[-1].positions, self.span_start, plan, None)
        original = compose(None if self.record is None else self.record.plan, plan)
        total = seconds + (self.record.seconds if self.record is not None else 0.0)
        self.record = ReductionRecord(self.video.num_tokens, plan.num_kept, total, self.span_start, original)
        self.record_plan = plan
        self.splits.append(stage.split)
        return hidden, positions

    def _open(self, index: int, text_model, hidden, positions) -> None:
        s = len(self.segments)
        past = 0
        if self.cache is not None and self.cache.logical_length:
            past = self.cache.segment_length(s)
        one_d = positions.dim() == 2
        self.segments.append(
            SegmentInputs(
                positions=positions,
                layer_position_ids=positions if one_d else None,
                rotary=text_model.rotary_emb(hidden, positions),
                masks=segment_masks(text_model.config, hidden.shape[1], past, hidden.dtype, hidden.device),
            )
        )

    def finish(self) -> None:
        """Records the processed chunk in the cache: the reducing chunk sets the splits; each
        segment's next position is ``last + 1`` of its positions."""
        if self.cache is None:
            return
        if self.reducing:
            if self.record is None:
                raise RuntimeError("reduction engine: the forward ended before its first stage ran")
            if self.run.next_stage() is not None:
                raise RuntimeError("reduction engine: the forward ended with stages still pending")
            if self.splits != self.cache.splits:
                self.cache.set_splits(self.splits)
        expected = self.cache.num_segments
        if len(self.segments) != expected:
            raise RuntimeError(
                f"reduction engine: {len(self.segments)} segments for a {expected}-segment cache"
            )
        if self.counts_before is None or self.counts_before[-1] is None:
            nexts = [next_position(seg.positions) for seg in self.segments]
        else:  # each segment's own count goes on by q whatever the decode rule
            nexts = [count + self.q for count in self.counts_before]
        follows_prefix = (
            self.cache.frozen_length > 0 and self.cache.logical_length == self.cache.frozen_length
        )
        self.cache.advance(self.q, nexts, reduced=self.record is not None)
        if self.record is not None and self.video.prompt_ends or self.record is None and follows_prefix:
            self.cache.end_prompt(self.decode_positions)


def reduce_span(
    hidden: torch.Tensor,
    start: int,
    n: int,
    grid,
    run: StageRun,
    context: AttentionContext,
    devices: tuple[torch.device, ...] = (),
):
    """Runs one stage on ``hidden[0, start:start+n]`` and splices its features in.

    Returns ``(hidden [1, q - n + n', C], plan, seconds)``; the plan's rows enter in its order.
    ``devices``: the GPUs synchronised around the timed stage (default: ``hidden``'s).
    """
    devices = devices or (hidden.device,)
    stop = start + n
    span = hidden[0, start:stop]
    synchronize(devices)
    began = time.perf_counter()
    with torch.no_grad():
        plan = run.run(span, grid, context)
    check_reduction(plan, span, grid)
    features = plan.features.to(device=hidden.device, dtype=hidden.dtype)
    reduced = torch.cat([hidden[:, :start], features[None], hidden[:, stop:]], dim=1)
    synchronize(devices)
    return reduced, plan, time.perf_counter() - began
